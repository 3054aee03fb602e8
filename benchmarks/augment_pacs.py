"""Does style augmentation help? PACS photo → paintings / cartoons / sketches, with and without it.

    python benchmarks/augment_pacs.py [--model arbitrary] [--seeds 3] [--views 2] [--copies 2]
        [--size 128] [--limit N] [--cache DIR] [--plot docs/augment_pacs.png]

PACS's four domains share seven classes. A linear probe on frozen VGG19 features (global average
of relu4_1 and relu5_1, 1024 values, the bundled Caffe weights) trains on 80% of `pacs_photo`
and is tested on the other 20% (every fifth photo in name order), on the PACS paintings the zoo's
arbitrary model never saw (those at even positions in name order; it trained on the odd ones),
on `pacs_cartoon_subset` and on `pacs_sketch_subset`. Two arms, each over `--seeds` seeds:

- (a) the usual augmentation: random resized crops, flips, colour jitter (`--views` per photo);
- (b) the same, where a third of the views start from a style-augmented copy of the photo
  (Jackson et al. 2019: StyleAugment at strength α = 0.5, two plain images to one stylised, the
  setting the paper found best), drawn from `--copies` stylised copies per photo made once and
  cached.

Prints accuracy mean ± std per domain and arm, the time of each stage, and (with --plot) a bar
chart. `--limit` keeps that many images per split, for a quick run.
"""

import argparse
import glob
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from nst.augment import StyleAugment
from nst.image import load_image
from nst.vgg import LossNetwork

ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "datasets"
CLASSES = ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]
LAYERS = ["relu4_1", "relu5_1"]
STYLED_SHARE = 1 / 3  # Jackson et al.: an augmentation ratio of 2:1, plain to stylised
STRENGTH = 0.5  # their α


def listed(folder: str, pattern: str = "*") -> list[str]:
    """The images of a PACS folder in name order."""
    return sorted(glob.glob(str(ASSETS / folder / f"{pattern}.jpg"))) + sorted(
        glob.glob(str(ASSETS / folder / f"{pattern}.png"))
    )


def splits(limit: int | None) -> dict[str, list[str]]:
    """The training photos and the four test domains (file lists)."""
    photos = listed("pacs_photo")
    paintings = sorted(listed("paintings_pacs_art"))[0::2]  # never seen by the zoo model
    groups = {
        "train": [path for index, path in enumerate(photos) if index % 5],
        "photo": photos[::5],
        "painting": paintings,
        "cartoon": listed("pacs_cartoon_subset"),
        "sketch": listed("pacs_sketch_subset"),
    }
    if limit:  # spread over the classes: every k-th file
        groups = {
            name: paths[:: max(1, len(paths) // limit)][:limit] for name, paths in groups.items()
        }
    return groups


def label(path: str) -> int:
    return CLASSES.index(Path(path).name.split("_")[0])


def read_images(paths: list[str], size: int) -> torch.Tensor:
    """N×3×size×size images in [0, 1] (PACS images are square, 227 px)."""
    return torch.cat(
        [
            F.interpolate(load_image(path), size=(size, size), antialias=True, mode="bilinear")
            for path in paths
        ]
    ).clamp(0, 1)


@torch.no_grad()
def features(vgg: LossNetwork, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Global averages of `LAYERS`: N×1024."""
    rows = []
    for start in range(0, len(images), batch):
        layers = vgg(images[start : start + batch], LAYERS)
        rows.append(torch.cat([layers[name].mean(dim=(2, 3)) for name in LAYERS], dim=1))
    return torch.cat(rows)


def usual_augmentation(size: int) -> v2.Transform:
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05),
        ]
    )


def views(photos: torch.Tensor, styled: torch.Tensor | None, count: int, seed: int, size: int):
    """`count` augmented views of every photo; with `styled` (N×K×3×H×W), a third of them start
    from one of the photo's stylised copies."""
    torch.manual_seed(seed)
    augment = usual_augmentation(size)
    out = []
    for _ in range(count):
        batch = photos.clone()
        if styled is not None:
            chosen = torch.rand(len(photos)) < STYLED_SHARE
            copy = torch.randint(styled.shape[1], (len(photos),))
            batch[chosen] = styled[chosen.nonzero().squeeze(1), copy[chosen]]
        out.append(torch.stack([augment(image) for image in batch]))
    return torch.cat(out)


def train_probe(train: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised features (L-BFGS, weight decay 1e-3)."""
    torch.manual_seed(seed)
    probe = torch.nn.Linear(train.shape[1], len(CLASSES))
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(train), labels) + 1e-3 * probe.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(x - mean) / std for x in (train, *others)]


def plot(results: dict, path: str) -> None:
    """Grouped bars: accuracy per domain, one bar per arm, the seeds' std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(next(iter(results.values())))
    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=120)
    width = 0.38
    for offset, (arm, scores) in enumerate(results.items()):
        means = [100 * statistics.mean(scores[d]) for d in domains]
        stds = [100 * statistics.pstdev(scores[d]) for d in domains]
        positions = [index + (offset - 0.5) * width for index in range(len(domains))]
        axes.bar(positions, means, width, yerr=stds, capsize=3, label=arm)
    axes.set_xticks(range(len(domains)), domains)
    axes.set_ylabel("accuracy (%)")
    axes.set_title("PACS, linear probe on VGG19 features, trained on photos")
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="arbitrary", help="a zoo name or a checkpoint")
    parser.add_argument("--paintings", default=None, help="fit the style distribution to these")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache", default=None, help="folder for the stylised copies")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    seconds = {}

    start = time.perf_counter()
    groups = splits(args.limit)
    images = {name: read_images(paths, args.size) for name, paths in groups.items()}
    labels = {name: torch.tensor([label(p) for p in paths]) for name, paths in groups.items()}
    seconds["read"] = time.perf_counter() - start

    start = time.perf_counter()
    name = f"styled_{Path(args.model).stem}_{args.size}_{len(groups['train'])}_{args.copies}.pt"
    cache = Path(args.cache) / name if args.cache else None
    if cache is not None and cache.is_file():
        styled = torch.load(cache, weights_only=True).float() / 255
    else:
        if args.model == "arbitrary" and args.paintings is None:
            augment = StyleAugment(strength=STRENGTH, seed=0)  # the zoo's, as users get it
        else:
            augment = StyleAugment.from_checkpoint(
                args.model, args.paintings, strength=STRENGTH, seed=0
            )
        copies = []
        for _ in range(args.copies):
            copies.append(torch.cat([augment(batch) for batch in images["train"].split(32)]))
        styled = torch.stack(copies, dim=1)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save((styled * 255).round().to(torch.uint8), cache)
    seconds["stylise"] = time.perf_counter() - start

    start = time.perf_counter()
    vgg = LossNetwork("vgg19", "auto")
    tests = {name: features(vgg, images[name]) for name in groups if name != "train"}
    seconds["test features"] = time.perf_counter() - start

    results = {"(a) usual": {}, "(b) usual + StyleAugment": {}}
    start = time.perf_counter()
    for seed in range(args.seeds):
        for arm, source in zip(results, (None, styled), strict=True):
            train = features(vgg, views(images["train"], source, args.views, seed, args.size))
            train_labels = labels["train"].repeat(args.views)
            names = list(tests)
            train, *others = standardise(train, *(tests[name] for name in names))
            probe = train_probe(train, train_labels, seed)
            with torch.no_grad():
                for name, test in zip(names, others, strict=True):
                    accuracy = (probe(test).argmax(1) == labels[name]).float().mean().item()
                    results[arm].setdefault(name, []).append(accuracy)
    seconds["train + test (all seeds)"] = time.perf_counter() - start

    counts = ", ".join(f"{name} {len(paths)}" for name, paths in groups.items())
    print(f"\nPACS at {args.size} px ({counts}); {args.seeds} seeds, {args.views} views per photo")
    domains = list(tests)
    print(f"{'arm':28}" + "".join(f"{name:>16}" for name in domains))
    for arm, scores in results.items():
        cells = [
            f"{100 * statistics.mean(scores[d]):6.1f} ± {100 * statistics.pstdev(scores[d]):4.1f}"
            for d in domains
        ]
        print(f"{arm:28}" + "".join(f"{cell:>16}" for cell in cells))
    gains = [
        100
        * (
            statistics.mean(results["(b) usual + StyleAugment"][d])
            - statistics.mean(results["(a) usual"][d])
        )
        for d in domains
    ]
    print(f"{'(b) − (a), points':28}" + "".join(f"{gain:>+16.1f}" for gain in gains))
    print("seconds: " + ", ".join(f"{stage} {value:.0f}" for stage, value in seconds.items()))
    if args.plot:
        plot(results, args.plot)
        print(f"Wrote {args.plot}")


if __name__ == "__main__":
    main()
