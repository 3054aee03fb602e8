"""Basic vs improved (and each improvement alone) on real images: a contact sheet and a table.

    python benchmarks/quality_basic_improved.py [--pairs CONTENT:STYLE ...] [--size 256]
        [--iterations 150] [--device auto] [--sheet docs/quality_basic_improved.jpg]

Every row optimises from the content image at the same size and iteration budget, with the
method's defaults from conf/method/*.yaml; an "… alone" row is `method=improved` with only that
improvement switched on. Content and style distances come from `nst.evaluate.StyleEvaluator`
(VGG19 Gram distance over relu1_1…relu5_1, content distance at relu4_2: the same for every
row, whatever loss the row optimised); seconds per iteration are timed after two warm-up steps.
Pairs are paths relative to ../shared/assets/images (or absolute), `content:style`; nst's
bundled samples work too (`sample:chelsea:sample:mosaic`).
"""

import argparse
import re
import time
from pathlib import Path

import torch
from basic_speed import StepClock
from PIL import Image, ImageDraw, ImageFont

from nst.api import compose_config, run
from nst.evaluate import StyleEvaluator
from nst.image import load_image, resize_long_side, to_pil

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "assets" / "images"
DEFAULT_PAIRS = [
    "content/chicago.jpg:style/starry_night.jpg",
    "content/brad_pitt.jpg:style/picasso_selfport1907.jpg",
    "content/cornell.jpg:style/la_muse_jcjohnson.jpg",
]
SWITCHES = ("geometric_weights", "all_layers", "activation_shift", "correlation_chain")


def pair_paths(pair: str) -> list:
    """`content:style` → two paths under IMAGES (or absolute); `sample:NAME` entries are kept."""
    parts = re.findall(r"sample:[^:]+|[^:]+", pair)
    return [part if part.startswith("sample:") else IMAGES / part for part in parts]


def only(switch: str) -> list[str]:
    """Overrides for `method=improved` with `switch` on and the other improvements off."""
    return ["method=improved", *(f"method.{name}={name == switch}" for name in SWITCHES)]


ROWS = {
    "basic": ["method=basic"],
    "improved": ["method=improved"],
    **{f"{switch.replace('_', ' ')} alone": only(switch) for switch in SWITCHES},
}


def stylize_timed(
    overrides: list[str], content: torch.Tensor, style: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Run one row on one pair: (output image, seconds per iteration after warm-up)."""
    clock = StepClock()
    output = run(
        compose_config("stylize", overrides), content, [style], progress=False, callbacks=[clock]
    )
    warm = clock.times[2:]
    return output, (warm[-1] - warm[0]) / max(1, len(warm) - 1)


def label_column(labels: list[str], cell: int, width: int) -> Image.Image:
    """A white column with one text label per row of height `cell`."""
    column = Image.new("RGB", (width, cell * len(labels)), "white")
    draw = ImageDraw.Draw(column)
    font = ImageFont.load_default(size=16)
    for row, label in enumerate(labels):
        draw.multiline_text(
            (8, row * cell + cell // 2 - 10),
            label.replace(" alone", "\nalone"),
            fill="black",
            font=font,
        )
    return column


def contact_sheet(grid: list[list[torch.Tensor]], labels: list[str], cell: int) -> Image.Image:
    """Rows of images (each fitted into a `cell` px square) with their labels on the left."""
    labels_image = label_column(labels, cell, width=170)
    sheet = Image.new("RGB", (labels_image.width + cell * len(grid[0]), cell * len(grid)), "white")
    sheet.paste(labels_image, (0, 0))
    for row, images in enumerate(grid):
        for column, image in enumerate(images):
            thumbnail = to_pil(resize_long_side(image, cell - 6))
            left = labels_image.width + column * cell + (cell - thumbnail.width) // 2
            sheet.paste(thumbnail, (left, row * cell + (cell - thumbnail.height) // 2))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cell", type=int, default=200, help="contact sheet cell size, px")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs/quality_basic_improved.jpg")
    args = parser.parse_args()

    pairs = [pair_paths(pair) for pair in args.pairs]
    images = [(load_image(content), load_image(style)) for content, style in pairs]
    common = [f"size={args.size}", f"method.iterations={args.iterations}", f"device={args.device}"]
    common.append("method.tolerance=0")  # exactly --iterations, for a fair comparison
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    evaluator = StyleEvaluator(device=device)
    grid = [[content for content, _ in images], [style for _, style in images]]
    table = []
    start = time.perf_counter()
    for name, overrides in ROWS.items():
        outputs, scores, seconds = [], [], []
        for content, style in images:
            output, per_iteration = stylize_timed([*overrides, *common], content, style)
            outputs.append(output)
            scores.append(evaluator(output, content, style))
            seconds.append(per_iteration)
        grid.append(outputs)
        table.append((name, scores, sum(seconds) / len(seconds)))
        print(f"{name}: done after {time.perf_counter() - start:.0f} s", flush=True)

    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(grid, ["content", "style", *ROWS], args.cell).save(args.sheet, quality=85)
    print_table(table, pairs, args, device)


def print_table(table: list, pairs: list, args: argparse.Namespace, device: str) -> None:
    """The results as a Markdown table: mean distances over the pairs, and per pair."""
    names = ", ".join(f"{Path(content).stem}+{Path(style).stem}" for content, style in pairs)
    print(f"\n{args.size} px, {args.iterations} L-BFGS iterations, {device}; pairs: {names}")
    print(f"contact sheet: {args.sheet}\n")
    print("| row | content distance | style distance | style, per pair | s/iteration |")
    print("|---|---|---|---|---|")
    for name, scores, seconds in table:
        content = sum(score["content"] for score in scores) / len(scores)
        style = sum(score["style"] for score in scores) / len(scores)
        per_pair = " / ".join(f"{score['style']:.3f}" for score in scores)
        print(f"| {name} | {content:.3f} | {style:.3f} | {per_pair} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
