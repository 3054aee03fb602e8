"""Style augmentation demo: a grid of photos (left column) and their augmentations by strength.

    python benchmarks/style_augment_demo.py --checkpoint ARB.ckpt
        [--paintings '../shared/assets/datasets/paintings_pacs_art/*.jpg' | --paintings fit.pt]
        [--max-paintings 200] [--save-distribution fit.pt]
        [--photos '../shared/assets/datasets/content_bsds500/test_*.jpg'] [--count 4]
        [--strengths 0.25 0.5 0.75 1.0] [--samples 2] [--size 256] [--seed 0] [--device auto]
        [--output style_augment.png]

The normal N(μ, Σ) is fitted to the arbitrary network's embeddings of `--max-paintings`
paintings (a glob), or read from a `.pt` file an earlier run saved with `--save-distribution`.
Each row is one photo (square crop at `--size`): the original, then `--samples` augmentations
at each strength (Jackson et al. 2019, §3), left to right.
"""

import argparse
import glob
import time

import torch
from torchvision.transforms import v2
from torchvision.utils import make_grid

from nst.augment import StyleAugment
from nst.image import load_image, save_image
from nst.methods.common import torch_device


def files(pattern: str, count: int) -> list[str]:
    """The first `count` files matching a glob (sorted)."""
    found = sorted(glob.glob(pattern))[:count]
    if not found:
        raise SystemExit(f"no files match {pattern!r}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--paintings", default="../shared/assets/datasets/paintings_pacs_art/*.jpg")
    parser.add_argument("--max-paintings", type=int, default=200)
    parser.add_argument("--save-distribution")
    parser.add_argument("--photos", default="../shared/assets/datasets/content_bsds500/test_*.jpg")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default="style_augment.png")
    args = parser.parse_args()

    device = torch_device(args.device)
    if args.paintings.endswith(".pt"):
        paintings = args.paintings
    else:
        paintings = [load_image(path) for path in files(args.paintings, args.max_paintings)]
    start = time.perf_counter()
    augment = StyleAugment.from_checkpoint(args.checkpoint, paintings, device=device)
    print(f"networks and style distribution ready in {time.perf_counter() - start:.1f} s")
    if args.save_distribution:
        print(f"saved the distribution to {augment.save_distribution(args.save_distribution)}")

    crop = v2.Compose([v2.Resize(args.size, antialias=True), v2.CenterCrop(args.size)])
    photos = torch.cat([crop(load_image(path)) for path in files(args.photos, args.count)])
    photos = photos.to(device)
    columns = [photos]
    for strength in args.strengths:  # the same seed: the same random styles at each strength
        augment_at = StyleAugment(
            augment.predictor,
            augment.network,
            augment.distribution,
            strength=strength,
            seed=args.seed,
        )
        columns += [augment_at(photos) for _ in range(args.samples)]
    grid = make_grid(torch.stack(columns, dim=1).flatten(0, 1), nrow=len(columns), padding=4)
    print(
        f"wrote {save_image(grid[None].cpu(), args.output)}: originals, then "
        f"{args.samples} per strength {args.strengths}"
    )


if __name__ == "__main__":
    main()
