"""Arbitrary-method quality: seen and unseen styles, next to the basic method, same evaluator.

    python benchmarks/arbitrary_quality.py --checkpoint runs/arbitrary_none/…/checkpoints/last.ckpt
        --styles-seen '../shared/assets/datasets/paintings_pacs_art/dog_*.jpg'
        --styles-unseen "$(cat runs/…/styles_holdout.txt | sed 's|^|DIR/|')"   # or a glob
        [--photos '../shared/assets/datasets/content_bsds500/test_*.jpg'] [--pairs 20]
        [--basic-pairs 5] [--size 512] [--iterations 500] [--device auto]

Each of `--pairs` (photo, style) pairs per group (photos and styles cycled in order) is stylised
by the checkpoint (style embedding and one forward pass, timed together) and scored by the fixed
`StyleEvaluator` (the same score as `fast_quality.py`); the first `--basic-pairs` of each group
are also run through the basic method for `--iterations` L-BFGS iterations. Prints the mean
content and style distances per group, and the unseen − seen gap (how well the predictor
generalises to styles it never trained on).
A style argument is a glob, or several paths separated by newlines.
"""

import argparse
import glob
import time
from itertools import cycle, islice

import torch

from nst.api import compose_config, method_config
from nst.evaluate import StyleEvaluator
from nst.image import load_image, resize_long_side
from nst.inference import load_stylizer, stylize_image
from nst.methods.basic import optimize_image
from nst.methods.common import torch_device


def paths(argument: str) -> list[str]:
    """Files named by a glob or by newline-separated paths."""
    names = [line.strip() for line in argument.splitlines() if line.strip()]
    found = sorted(path for name in names for path in glob.glob(name))
    if not found:
        raise SystemExit(f"no files match {argument!r}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--styles-seen", required=True)
    parser.add_argument("--styles-unseen", required=True)
    parser.add_argument("--photos", default="../shared/assets/datasets/content_bsds500/test_*.jpg")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--basic-pairs", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    photos = paths(args.photos)
    network = load_stylizer(args.checkpoint)
    evaluator = StyleEvaluator(device=torch_device(args.device))
    cfg = compose_config("stylize", [f"size={args.size}", f"method.iterations={args.iterations}"])
    scores, seconds = {}, {}

    def record(name: str, output, photo, style, elapsed: float) -> None:
        scores.setdefault(name, []).append(evaluator(output, photo, style))
        seconds.setdefault(name, []).append(elapsed)

    for group in ("seen", "unseen"):
        styles = paths(getattr(args, f"styles_{group}"))
        pairs = islice(zip(cycle(photos), cycle(styles)), args.pairs)
        for index, (photo_path, style_path) in enumerate(pairs):
            photo = resize_long_side(load_image(photo_path), args.size)
            style = load_image(style_path)
            start = time.perf_counter()
            network.set_styles([style])
            output = stylize_image(network, photo, device=args.device)
            record(f"arbitrary, {group} styles", output, photo, style, time.perf_counter() - start)
            if index < args.basic_pairs:
                start = time.perf_counter()
                output = optimize_image(
                    photo,
                    [style],
                    method_config(cfg),
                    cfg.loss_net,
                    device=args.device,
                    progress=False,
                )
                name = f"basic {args.iterations} it, {group} styles"
                record(name, output, photo, style, time.perf_counter() - start)
            print(f"{group} {index + 1}/{args.pairs} {photo_path} × {style_path}", flush=True)

    print(f"\n{args.pairs} pairs per group at {args.size} px")
    print(f"{'method':34} {'content':>9} {'style':>9} {'s/image':>9}")
    means = {}
    for name, rows in scores.items():
        content = sum(row["content"] for row in rows) / len(rows)
        style_distance = sum(row["style"] for row in rows) / len(rows)
        means[name] = (content, style_distance)
        print(
            f"{name:34} {content:9.4f} {style_distance:9.4f} {sum(seconds[name]) / len(rows):9.2f}"
        )
    seen, unseen = means["arbitrary, seen styles"], means["arbitrary, unseen styles"]
    print(
        f"unseen − seen gap: content {unseen[0] - seen[0]:+.4f}, style {unseen[1] - seen[1]:+.4f}"
    )


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
