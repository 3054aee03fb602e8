"""Zoo quality: each fast model against the published reference on the issue's quality bar.

    python benchmarks/zoo_quality.py wave udnie runs/fast_x/…/last.ckpt
        [--photos 'DIR/test_*.jpg'] [--count 20] [--size 512] [--style-dir DIR] [--sheet out.jpg]
        [--basic 3] [--basic-iterations 300] [--precision fp32|bf16]

Each model (a zoo name or a checkpoint) stylises the first `--count` photos in name order at long
side `--size`; the fixed evaluator (`nst.evaluate.StyleDistances`) scores every output against its
photo and the model's style image. Prints the mean style and content distances and SSIM, the
reference model's (lengstrom's published fast models on the same 20 photos at 512 px, where the
model's style has one) and the ratios. `--sheet` writes the first four outputs of every model as
one JPEG, to look at. `--basic N` also runs the basic method (Gatys et al., today's defaults
with the stopping rule off) for `--basic-iterations` on the first N photos with each model's
style, and prints it beside the model on those same photos (300 iterations at 512 px took 855 s
on a 2-core AVX2 CPU).
"""

import argparse
import glob
from functools import cache
from pathlib import Path

import torch

from nst.api import compose_config, method_config
from nst.evaluate import StyleDistances
from nst.image import load_image, resize_long_side, save_image
from nst.inference import batch_stylizer, load_stylizer
from nst.methods.basic import optimize_image

REFERENCE = {  # style / content of the published models (issue 10's quality bar)
    "wave": (0.132, 1.046),
    "udnie": (0.074, 1.008),
    "the_scream": (0.143, 0.687),
    "shipwreck": (0.122, 0.548),
}
OTHER_BAR = (0.13, 1.0)  # every other zoo model: style ≤ 0.13 and content ≤ 1.0


def style_image(hparams: dict, style_dir: str):
    """The model's style image: its recorded path, else that file name in `style_dir`."""
    image = hparams["style"]["image"]
    image = image if isinstance(image, str) else image[0]
    path = Path(image) if Path(image).is_file() else Path(style_dir) / Path(image).name
    return load_image(path)


ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"  # ../shared beside the repo
PHOTOS = str(ASSETS / "datasets" / "content_bsds500" / "test_*.jpg")
STYLE_DIR = str(ASSETS / "images" / "style")


@torch.no_grad()
def score(
    source: str,
    count: int = 20,
    size: int = 512,
    photos: str = PHOTOS,
    style_dir: str = STYLE_DIR,
    outputs: list | None = None,
    precision: str = "fp32",
) -> dict[str, float]:
    """Mean style and content distances and SSIM of model `source` over the first `count`
    photos at long side `size`, run as `stylize.py precision=…` runs it; the first four outputs
    are appended to `outputs` when given."""
    stylizer = load_stylizer(source)
    run = batch_stylizer(stylizer, torch.device("cpu"), precision)
    style = style_image(stylizer.hparams, style_dir)
    metric = distances()
    metric.reset()
    for index, path in enumerate(sorted(glob.glob(photos))[:count]):
        photo = resize_long_side(load_image(path), size)
        output = run(photo).clamp(0, 1)
        metric.update(output, photo, style)
        if outputs is not None and index < 4:
            outputs.append(resize_long_side(output, 256))
    return {name: float(value) for name, value in metric.compute().items()}


def score_basic(style, paths: list[str], size: int, iterations: int) -> dict[str, float]:
    """Mean distances of the basic method's images of `paths` in `style` after `iterations`
    L-BFGS iterations at long side `size` (the stopping rule off, every other knob default)."""
    overrides = [f"size={size}", f"method.iterations={iterations}", "method.tolerance=0"]
    cfg = compose_config("stylize", overrides)
    method = method_config(cfg)
    metric = distances()
    metric.reset()
    for path in paths:
        photo = resize_long_side(load_image(path), size)
        output = optimize_image(photo, [style], method, cfg.loss_net, progress=False)
        metric.update(output, photo, style)
    return {name: float(value) for name, value in metric.compute().items()}


def table_row(scores: dict[str, float]) -> str:
    return " ".join(f"{scores[name]:11.3f}" for name in ("style", "content", "ssim"))


def compare_with_basic(args: argparse.Namespace) -> None:
    """Each model beside the basic method on the first `args.basic` photos."""
    paths = sorted(glob.glob(args.photos))[: args.basic]
    print(f"\nfirst {len(paths)} photos at {args.size} px: each model and the basic method")
    print(f"{'model':40} {'style':>11} {'content':>11} {'SSIM':>11}")
    styles_done = set()
    for source in args.models:
        stylizer = load_stylizer(source)
        model = score(source, args.basic, args.size, args.photos, args.style_dir)
        print(f"{source[-40:]:40} {table_row(model)}", flush=True)
        if stylizer.style_name not in styles_done:
            styles_done.add(stylizer.style_name)
            style = style_image(stylizer.hparams, args.style_dir)
            basic = score_basic(style, paths, args.size, args.basic_iterations)
            label = f"basic, {args.basic_iterations} it, {stylizer.style_name}"
            print(f"{label[-40:]:40} {table_row(basic)}", flush=True)


@cache
def distances() -> StyleDistances:
    """One metric (its VGG19 loads once)."""
    return StyleDistances()


def save_sheet(images: list, path: str, columns: int = 4) -> None:
    """The images, cropped to a common size, as rows of `columns` tiles in one JPEG."""
    height = min(image.shape[-2] for image in images)
    width = min(image.shape[-1] for image in images)
    tiles = torch.cat([image[..., :height, :width] for image in images])
    tiles = torch.nn.functional.pad(tiles, (2, 2, 2, 2), value=1.0)
    grid = tiles.reshape(-1, columns, 3, height + 4, width + 4).permute(2, 0, 3, 1, 4)
    save_image(grid.reshape(1, 3, -1, columns * (width + 4)), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--photos", default=PHOTOS)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--style-dir", default=STYLE_DIR)
    parser.add_argument("--sheet", default=None)
    parser.add_argument("--basic", type=int, default=0, help="photos for the basic comparison")
    parser.add_argument("--basic-iterations", type=int, default=300)
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 | fp16 (on the CPU)")
    args = parser.parse_args()

    rows, sheet = [], []
    for source in args.models:
        scores = score(
            source, args.count, args.size, args.photos, args.style_dir, sheet, args.precision
        )
        rows.append((source, load_stylizer(source).style_name, scores))
        print(f"{source}: " + " ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)

    print(f"\n{args.count} photos at {args.size} px (nst.evaluate.StyleDistances)")
    header = ("model", "style", "content", "SSIM", "ref style", "ref content", "ratio s", "ratio c")
    print(f"{header[0]:40} " + " ".join(f"{name:>11}" for name in header[1:]))
    for source, name, scores in rows:
        ref_style, ref_content = REFERENCE.get(name, OTHER_BAR)
        figures = (
            scores["style"],
            scores["content"],
            scores["ssim"],
            ref_style,
            ref_content,
            scores["style"] / ref_style,
            scores["content"] / ref_content,
        )
        print(f"{source[-40:]:40} " + " ".join(f"{value:11.3f}" for value in figures))
    if args.sheet:
        save_sheet(sheet, args.sheet)
    if args.basic:
        compare_with_basic(args)


if __name__ == "__main__":
    main()
