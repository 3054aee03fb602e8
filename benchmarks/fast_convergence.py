"""Fast-method convergence: the paper's recipe against the CPU recipe, for equal wall-clock time.

    python benchmarks/fast_convergence.py [--style wave] [--minutes 10 30] [--count 20]
        [--cpu-steps 3000] [--out runs/convergence]

Each recipe trains the same style from scratch on the BSDS500 train+validation photos, one after
the other on the same machine: first for the smallest budget, then resumed (`ckpt_path=last`; the
Lightning timer's state is in the checkpoint) up to each larger one. At each budget the network
is scored with the zoo's quality measure (`zoo_quality.py`: first `--count` BSDS500 test photos,
512 px, `StyleEvaluator`). Prints each recipe's style and content distance per budget, its
training images/s, and the ratio of the CPU recipe's images/s to the paper's.

The paper's recipe (Johnson et al. 2016, §4): fp32, 256-px crops of 256-px photos, Adam at a
constant lr 1e-3, the style at 256 px. The CPU recipe is conf/recipe/cpu.yaml (`--cpu-steps` is
its cosine schedule's horizon; set it to about the steps it reaches in the largest budget).
"""

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from zoo_quality import score

ROOT = Path(__file__).resolve().parents[1]
DATA = [
    "data=imagefolder",
    "data.path=../shared/assets/datasets/content_bsds500",
    "data.split=train+validation",
]
RECIPES = {
    "paper": [*DATA, "data.size=256", "data.crop=256", "style.size=256"],
    "cpu": ["recipe=cpu"],
}


def train(style: str, recipe: list[str], folder: Path, minutes: float, resume: bool) -> Path:
    """Train (or continue) one recipe up to `minutes` of training time; returns last.ckpt."""
    seconds = round(minutes * 60)
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "method=fast",
        f"style={style}",
        *recipe,
        f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}",
        "logger=csv",
        f"hydra.run.dir={folder}",
        "trainer.enable_progress_bar=false",
        "trainer.val_check_interval=100000",
        *(["ckpt_path=last"] if resume else []),
    ]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return folder / "checkpoints" / "last.ckpt"


def images_per_second(folder: Path) -> float:
    """The mean of the run's logged training images/s."""
    with open(folder / "metrics.csv") as file:
        values = [
            float(row["train/device/samples_per_sec"])
            for row in csv.DictReader(file)
            if row.get("train/device/samples_per_sec")
        ]
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="wave")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 30])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--cpu-steps", type=int, default=3000)
    parser.add_argument("--out", default="runs/convergence")
    args = parser.parse_args()

    results = {}
    for name, recipe in RECIPES.items():
        if name == "cpu":
            recipe = [*recipe, f"trainer.max_steps={args.cpu_steps}"]
        folder = Path(args.out).resolve() / name
        for index, minutes in enumerate(sorted(args.minutes)):
            checkpoint = train(args.style, recipe, folder, minutes, resume=index > 0)
            scores = score(str(checkpoint), count=args.count)
            style_distance, content = scores["style"], scores["content"]
            results[name, minutes] = (style_distance, content)
            print(f"{name} {minutes:g} min: style {style_distance:.4f} content {content:.4f}")
        results[name] = images_per_second(folder)

    print(f"\nstyle={args.style}, scored on {args.count} BSDS500 test photos at 512 px")
    print(f"{'recipe':8} {'minutes':>8} {'style':>8} {'content':>8} {'images/s':>9}")
    for name in RECIPES:
        for minutes in sorted(args.minutes):
            style_distance, content = results[name, minutes]
            print(
                f"{name:8} {minutes:8g} {style_distance:8.4f} {content:8.4f} {results[name]:9.2f}"
            )
    print(f"images/s ratio cpu/paper: {results['cpu'] / results['paper']:.2f}")


if __name__ == "__main__":
    main()
