"""Fast-method quality: a trained network next to the basic method on the same photos.

    python benchmarks/fast_quality.py --checkpoint runs/fast_wave/…/checkpoints/last.ckpt
        [--photos '../shared/assets/datasets/content_bsds500/test_*.jpg'] [--count 200]
        [--size 512] [--iterations 500] [--snapshots 50 100 200] [--device auto]

For each photo (long side `--size`), the fast network's output and the basic method's image after
each of `--snapshots` and `--iterations` L-BFGS iterations (one run, images captured on the way)
are scored by the fixed `StyleEvaluator` against the photo and the checkpoint's style image.
Prints the mean content and style distances and the seconds per image of each.
"""

import argparse
import glob
import time

import pytorch_lightning as pl
import torch

from nst.api import compose_config, method_config
from nst.evaluate import StyleEvaluator
from nst.image import load_image, resize_long_side
from nst.inference import load_stylizer, stylize_image
from nst.methods.basic import optimize_image
from nst.methods.common import torch_device


class Snapshots(pl.Callback):
    """The optimised image after each of the given steps."""

    def __init__(self, steps: list[int]):
        self.steps, self.images = set(steps), {}

    def on_train_batch_end(self, trainer, module, *args) -> None:
        if trainer.global_step in self.steps:
            self.images[trainer.global_step] = module.image.detach().clamp(0, 1).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--photos", default="../shared/assets/datasets/content_bsds500/test_*.jpg")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--snapshots", type=int, nargs="*", default=[50, 100, 200])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    network = load_stylizer(args.checkpoint)
    hparams = network.hparams
    style = load_image(hparams["style"]["image"])
    photos = sorted(glob.glob(args.photos))[: args.count]
    evaluator = StyleEvaluator(device=torch_device(args.device))
    cfg = compose_config(
        "stylize",
        [f"size={args.size}", f"method.iterations={args.iterations}", "method.tolerance=0"],
    )
    steps = [step for step in args.snapshots if step < args.iterations]
    scores, seconds = {}, {}

    def record(name: str, output, photo, elapsed: float) -> None:
        score = evaluator(output, photo, style)
        scores.setdefault(name, []).append(score)
        seconds.setdefault(name, []).append(elapsed)

    for index, path in enumerate(photos):
        photo = resize_long_side(load_image(path), args.size)
        start = time.perf_counter()
        output = stylize_image(network, photo, device=args.device)
        record("fast (one forward pass)", output, photo, time.perf_counter() - start)
        snapshots = Snapshots(steps)
        start = time.perf_counter()
        output = optimize_image(
            photo,
            [style],
            method_config(cfg),
            cfg.loss_net,
            device=args.device,
            progress=False,
            callbacks=[snapshots],
        )
        elapsed = time.perf_counter() - start
        for step in steps:
            record(
                f"basic, {step} iterations",
                snapshots.images[step],
                photo,
                elapsed * step / args.iterations,
            )
        record(f"basic, {args.iterations} iterations", output, photo, elapsed)
        print(f"{index + 1}/{len(photos)} {path}", flush=True)

    print(f"\n{len(photos)} photos at {args.size} px, style {hparams['style']['image']}")
    print(f"{'method':28} {'content':>9} {'style':>9} {'s/image':>9}")
    for name, rows in scores.items():
        content = sum(row["content"] for row in rows) / len(rows)
        style_distance = sum(row["style"] for row in rows) / len(rows)
        print(
            f"{name:28} {content:9.4f} {style_distance:9.4f} {sum(seconds[name]) / len(rows):9.2f}"
        )


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
