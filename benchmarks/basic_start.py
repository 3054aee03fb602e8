"""Basic-method start images: how soon each `method.init` reaches a given quality.

    python benchmarks/basic_start.py [--pairs CONTENT:STYLE ...] [--inits content matched]
        [--size 256] [--steps 25 50 100 150]

Each pair is optimised once per start image with the method's defaults and the stopping rule
off (`method.tolerance=0`), and the image is scored by `nst.evaluate.StyleEvaluator` after each
of `--steps` iterations: style and content distances, SSIM, and the seconds to get there.
Pairs are as in `quality_basic_improved.py` (paths under ../shared/assets/images).
"""

import argparse
import time

import pytorch_lightning as pl
from quality_basic_improved import pair_paths

from nst.api import compose_config, method_config
from nst.evaluate import StyleEvaluator
from nst.image import load_image, resize_long_side
from nst.methods.basic import optimize_image

PAIRS = ["content/chicago.jpg:style/starry_night.jpg", "content/brad_pitt.jpg:style/feathers.jpg"]


class Snapshots(pl.Callback):
    """The image and the seconds since the start at each of `steps`."""

    def __init__(self, steps: set[int]):
        self.steps, self.images, self.start = steps, {}, time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, module, *args) -> None:
        if trainer.global_step in self.steps:
            elapsed = time.perf_counter() - self.start
            self.images[trainer.global_step] = (module.image.detach().clamp(0, 1), elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=PAIRS)
    parser.add_argument("--inits", nargs="+", default=["content", "matched"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100, 150])
    args = parser.parse_args()

    evaluator = StyleEvaluator()
    print(f"{'pair':40} {'init':8} {'step':>5} {'s':>5} {'style':>7} {'content':>8} {'ssim':>6}")
    for pair in args.pairs:
        content_path, style_path = pair_paths(pair)
        content, style = load_image(content_path), load_image(style_path)
        photo = resize_long_side(content, args.size)
        for init in args.inits:
            overrides = [f"size={args.size}", f"method.iterations={max(args.steps)}"]
            cfg = compose_config("stylize", [*overrides, f"method.init={init}"])
            cfg.method.tolerance = 0
            snapshots = Snapshots(set(args.steps))
            method = method_config(cfg)
            optimize_image(
                content, [style], method, cfg.loss_net, progress=False, callbacks=[snapshots]
            )
            for step, (image, seconds) in sorted(snapshots.images.items()):
                scores = evaluator(image, photo, style)
                print(
                    f"{pair[-40:]:40} {init:8} {step:5d} {seconds:5.0f} {scores['style']:7.4f} "
                    f"{scores['content']:8.4f} {scores['ssim']:6.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
