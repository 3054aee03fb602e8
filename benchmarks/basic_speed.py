"""Basic-method speed: nst vs pastiche, measured in the same run, printed as a table.

    python benchmarks/basic_speed.py [--sizes 512 256] [--iterations 20] [--device auto]
        [--full-run]   # also time `stylize.py` for 500 iterations at 512 px, start-up included

Figures: L-BFGS iterations/s per size (after warm-up) in fp32 and, where the device computes
bf16 natively (a GPU, or a CPU with AVX-512 BF16 or AMX), with `precision=bf16`; start-up
(process start to the first iteration, and how far above the floor of importing torch and
Lightning); the ratio to pastiche (`python -m pastiche`, same images, sizes and layers), and
bf16's to nst's own fp32.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from pytorch_lightning import Callback

from nst.api import compose_config, method_config
from nst.image import save_image
from nst.methods.basic import optimize_image
from nst.methods.common import runs_natively, torch_device
from nst.samples import load_sample

ROOT = Path(__file__).resolve().parents[1]


class StepClock(Callback):
    """Timestamps of every finished optimiser step."""

    def __init__(self):
        self.times = []

    def on_train_batch_end(self, *args):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def nst_iterations_per_second(size: int, iterations: int, device: str, precision: str) -> float:
    cfg = compose_config(
        "stylize", [f"size={size}", f"method.iterations={iterations}", "method.tolerance=0"]
    )
    clock = StepClock()
    optimize_image(
        load_sample("sample:chelsea"),
        [load_sample("sample:mosaic")],
        method_config(cfg),
        cfg.loss_net,
        device=device,
        progress=False,
        callbacks=[clock],
        precision=precision,
    )
    warm = clock.times[2:]  # skip the first steps (allocation, L-BFGS start)
    return (len(warm) - 1) / (warm[-1] - warm[0])


def pastiche_iterations_per_second(
    size: int, iterations: int, device: str, content: Path, style: Path
) -> float:
    info_step = max(1, iterations // 4)
    device = "cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pastiche",
                "--device",
                device,
                "--num-steps",
                str(iterations),
                "--size",
                str(size),
                "--info-step",
                str(info_step),
                "--content",
                str(content),
                "--styles",
                str(style),
                "--output",
                f"{folder}/out.png",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^\d+\s", line)]
    (first_step, first_time), (last_step, last_time) = [
        (int(row[0]), float(row[1])) for row in (rows[1], rows[-1])
    ]
    return (last_step - first_step) / (last_time - first_time)


def command_seconds(*overrides: str) -> float:
    """Wall time of one `stylize.py` run (start-up, optimisation and writing included)."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "stylize.py"),
                "input=sample:chelsea",
                "style=sample:mosaic",
                f"output={folder}/out.png",
                *overrides,
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def import_seconds() -> float:
    """Wall time of a process that only imports torch and Lightning: start-up's floor."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, pytorch_lightning"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--full-run", action="store_true")
    args = parser.parse_args()

    rows = []
    # Emulated bf16 (a CPU without AVX-512 BF16) is many times slower than fp32: no row then.
    native_bf16 = runs_natively("bf16", torch_device(args.device))
    with tempfile.TemporaryDirectory() as folder:
        content, style = Path(folder) / "content.png", Path(folder) / "style.png"
        save_image(load_sample("sample:chelsea"), content)
        save_image(load_sample("sample:mosaic"), style)
        for size in args.sizes:
            ours = nst_iterations_per_second(size, args.iterations, args.device, "fp32")
            theirs = pastiche_iterations_per_second(
                size, args.iterations, args.device, content, style
            )
            rows.append((f"L-BFGS it/s at {size} px", ours, theirs))
            if native_bf16:
                bf16 = nst_iterations_per_second(size, args.iterations, args.device, "bf16")
                rows.append((f"  bf16 at {size} px (ratio: pastiche)", bf16, theirs))
                rows.append(("  bf16 ratio to nst fp32", bf16 / ours, None))
    # Start-up: a one-iteration run at 64 px is start-up plus a negligible step.
    startup = min(command_seconds("size=64", "method.iterations=1") for _ in range(2))
    rows.append(("start-up to first iteration, s", startup, None))
    floor = min(import_seconds() for _ in range(2))
    rows.append(("  floor: import torch + Lightning, s", floor, None))
    rows.append(("  start-up above the floor, s", startup - floor, None))
    if args.full_run:
        rows.append(("500 it at 512 px from the CLI, s", command_seconds("size=512"), None))

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {device}, torch threads: {torch.get_num_threads()}")
    print(f"{'figure':36} {'nst':>10} {'pastiche':>10} {'ratio':>7}")
    for name, ours, theirs in rows:
        ratio = f"{ours / theirs:7.2f}" if theirs else "       "
        theirs_text = f"{theirs:10.3f}" if theirs else " " * 10
        print(f"{name:36} {ours:10.3f} {theirs_text} {ratio}")


if __name__ == "__main__":
    main()
