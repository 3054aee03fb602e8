"""Basic-method time to quality: how soon each way of running reaches the picture that today's
fp32 default reaches after 300 iterations.

    python benchmarks/basic_time_to_quality.py [--pairs CONTENT:STYLE ...] [--size 512]
        [--iterations 300] [--every 25] [--cap 0.75] [--variants matched scales bf16 …]

Per pair, the baseline (fp32, one scale, the photo as the start, stopping rule off) runs
`--iterations` L-BFGS iterations; `nst.evaluate.StyleEvaluator`'s style and content distances
of its result are the target. Each variant then runs with its settings, scored every `--every`
iterations at the output size; its time to quality is the wall time (from building the loss, scoring
left out) until the first score with both distances at most the target's. A variant is stopped
once it reaches the target or has run `--cap` × the baseline's time ("—": not reached by then).
Prints each pair's seconds and ratios to the baseline, and each variant's mean ratio.
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
from nst.methods.common import runs_natively, torch_device

PAIRS = [
    "content/chicago.jpg:style/starry_night.jpg",
    "content/brad_pitt.jpg:style/picasso_selfport1907.jpg",
    "content/cornell.jpg:style/adain_brushstrokes.jpg",
    "content/sagano_bamboo_forest.jpg:style/adain_woman_in_peasant_dress.jpg",
]
VARIANTS = {
    "matched": ["method.init=matched"],  # the stopping rule stays on, as by default
    "scales": ["method.scales=2"],
    "scales+matched": ["method.scales=2", "method.init=matched"],
    "bf16": ["precision=bf16"],  # VGG passes under autocast: native bf16 only (below)
    "bf16+scales+matched": ["precision=bf16", "method.scales=2", "method.init=matched"],
}
# Emulated bf16 (a CPU without AVX-512 BF16) is many times slower than fp32: not run by default.
DEFAULT_VARIANTS = [
    name for name in VARIANTS if "bf16" not in name or runs_natively("bf16", torch_device("auto"))
]


class Scores(pl.Callback):
    """Scores the image every `every` steps at the output size; stops the run once it reaches
    `target` or the time `limit`. Keeps (seconds, scores) with scoring time left out."""

    def __init__(self, evaluator, photo, style, every: int, target=None, limit=float("inf")):
        self.evaluator, self.photo, self.style, self.every = evaluator, photo, style, every
        self.target, self.limit, self.history = target, limit, []
        self.start, self.scoring = time.perf_counter(), 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, module, *args) -> None:
        image = module.image.detach().clamp(0, 1)
        if trainer.global_step % self.every or image.shape[-2:] != self.photo.shape[-2:]:
            return
        elapsed = time.perf_counter() - self.start - self.scoring
        began = time.perf_counter()
        scores = self.evaluator(image, self.photo, self.style)
        self.scoring += time.perf_counter() - began
        self.history.append((elapsed, scores))
        if self.target and (reached(scores, self.target) or elapsed >= self.limit):
            trainer.should_stop = True


def reached(scores: dict, target: dict) -> bool:
    return scores["style"] <= target["style"] and scores["content"] <= target["content"]


def run(content, style, photo, overrides, evaluator, every, target=None, limit=float("inf")):
    cfg = compose_config("stylize", overrides)
    scores = Scores(evaluator, photo, style, every, target, limit)
    optimize_image(
        content,
        [style],
        method_config(cfg),
        cfg.loss_net,
        progress=False,
        callbacks=[scores],
        precision=cfg.precision,
    )
    return scores.history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=PAIRS)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--cap", type=float, default=0.75)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    args = parser.parse_args()

    evaluator = StyleEvaluator()
    base = [f"size={args.size}", f"method.iterations={args.iterations}"]
    ratios = {name: [] for name in args.variants}
    print(f"{'pair':44} {'run':15} {'s':>6} {'ratio':>6} {'style':>7} {'content':>8}")
    for pair in args.pairs:
        content_path, style_path = pair_paths(pair)
        content, style = load_image(content_path), load_image(style_path)
        photo = resize_long_side(content, args.size)
        history = run(content, style, photo, [*base, "method.tolerance=0"], evaluator, args.every)
        seconds, target = history[-1]
        name = pair[-44:]
        print(
            f"{name:44} {'baseline':15} {seconds:6.0f} {1:6.2f} {target['style']:7.4f} "
            f"{target['content']:8.4f}",
            flush=True,
        )
        for variant in args.variants:
            overrides = [*base, *VARIANTS[variant]]
            limit = args.cap * seconds
            history = run(content, style, photo, overrides, evaluator, args.every, target, limit)
            hits = [(s, scores) for s, scores in history if reached(scores, target)]
            at, scores = hits[0] if hits else history[-1]
            ratio = at / seconds if hits else float("nan")
            ratios[variant].append(ratio if hits else args.cap)
            shown = f"{at:6.0f} {ratio:6.2f}" if hits else f"{'—':>6} {'—':>6}"
            print(
                f"{name:44} {variant:15} {shown} {scores['style']:7.4f} {scores['content']:8.4f}",
                flush=True,
            )
    for variant, values in ratios.items():
        print(
            f"mean ratio {variant}: {sum(values) / len(values):.2f} (unreached counted as "
            f"{args.cap}: a lower bound)"
        )


if __name__ == "__main__":
    main()
