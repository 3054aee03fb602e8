"""Arbitrary-method quality: seen and unseen styles, next to the basic method, same evaluator.

    python benchmarks/arbitrary_quality.py --checkpoint arbitrary        # the zoo's, or a path
        [--styles-seen GLOB] [--styles-unseen GLOB]    # default: issue 11's bar (below)
        [--photos '../shared/assets/datasets/content_bsds500/test_*.jpg'] [--photo-count 20]
        [--pairs N] [--basic-pairs 0] [--size 512] [--iterations 300] [--device auto]

Every photo of the first `--photo-count` (name order) with every style of each group (`--pairs`
limits the pairs per group) is stylised by the checkpoint (style embedding and one forward pass,
timed together) and scored by the fixed `StyleEvaluator` (the same score as `zoo_quality.py`);
the first `--basic-pairs` of each group also run through the basic method for `--iterations`
L-BFGS iterations. Prints the mean content and style distances and luminance SSIM per group,
the reference (Magenta's released arbitrary model on the unseen bar: style 0.261, content
1.565), and the unseen / seen
style ratio (how well the predictor generalises to styles it never trained on; the bar: ≤ 1.25).
The default unseen styles are the bar's 10 paintings from `../shared/assets/images/style`; the
default seen ones are 10 training paintings of the zoo model (the PACS paintings at odd positions).
A style argument is a glob, or several paths separated by newlines.
"""

import argparse
import glob
import time
from itertools import islice, product
from pathlib import Path

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


ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"  # ../shared beside the repo
STYLE_DIR = ASSETS / "images" / "style"
UNSEEN = [  # issue 11's quality bar: paintings the zoo model never saw
    "adain_brushstrokes.jpg",
    "adain_contrast_of_forms.jpg",
    "adain_en_campo_gris.jpg",
    "adain_flower_of_life.jpg",
    "adain_mondrian.jpg",
    "adain_scene_de_rue.jpg",
    "adain_woman_in_peasant_dress.jpg",
    "feathers.jpg",
    "japanese_painting.jpg",
    "picasso_selfport1907.jpg",
]
PACS = ASSETS / "datasets" / "paintings_pacs_art"
REFERENCE = (0.261, 1.565)  # Magenta's arbitrary model on the unseen bar: style, content


def seen_styles(count: int = 10) -> str:
    """`count` of the zoo model's training paintings, spread over the PACS classes."""
    training = sorted(glob.glob(f"{PACS}/*.jpg"))[1::2]  # odd positions: data=bsds_paintings
    step = max(1, len(training) // count)
    return "\n".join(training[::step][:count])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="arbitrary")
    parser.add_argument("--styles-seen", default=seen_styles())
    parser.add_argument("--styles-unseen", default="\n".join(f"{STYLE_DIR}/{n}" for n in UNSEEN))
    parser.add_argument("--photos", default=str(ASSETS / "datasets/content_bsds500/test_*.jpg"))
    parser.add_argument("--photo-count", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--basic-pairs", type=int, default=0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    photos = paths(args.photos)[: args.photo_count]
    network = load_stylizer(args.checkpoint)
    evaluator = StyleEvaluator(device=torch_device(args.device))
    cfg = compose_config(
        "stylize",
        [f"size={args.size}", f"method.iterations={args.iterations}", "method.tolerance=0"],
    )
    scores, seconds = {}, {}

    def record(name: str, output, photo, style, elapsed: float) -> None:
        scores.setdefault(name, []).append(evaluator(output, photo, style))
        seconds.setdefault(name, []).append(elapsed)

    for group in ("seen", "unseen"):
        styles = paths(getattr(args, f"styles_{group}"))
        pairs = list(islice(product(photos, styles), args.pairs))
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
            print(f"{group} {index + 1}/{len(pairs)} {photo_path} × {style_path}", flush=True)

    print(f"\n{len(pairs)} pairs per group at {args.size} px")
    print(f"{'method':34} {'content':>9} {'style':>9} {'SSIM':>9} {'s/image':>9}")
    means = {}
    for name, rows in scores.items():
        content, style_distance, ssim = (
            sum(row[key] for row in rows) / len(rows) for key in ("content", "style", "ssim")
        )
        means[name] = (content, style_distance)
        print(
            f"{name:34} {content:9.4f} {style_distance:9.4f} {ssim:9.3f} "
            f"{sum(seconds[name]) / len(rows):9.2f}"
        )
    seen, unseen = means["arbitrary, seen styles"], means["arbitrary, unseen styles"]
    print(f"{'reference (Magenta), unseen':34} {REFERENCE[1]:9.4f} {REFERENCE[0]:9.4f}")
    print(
        f"unseen / reference: content {unseen[0] / REFERENCE[1]:.3f}, "
        f"style {unseen[1] / REFERENCE[0]:.3f} (bar: both ≤ 1)"
    )
    print(f"unseen / seen style: {unseen[1] / seen[1]:.3f} (bar: ≤ 1.25)")


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
