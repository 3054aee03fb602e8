"""Improved-method and multi-scale speed, measured in the same run, printed as a table.

    python benchmarks/improved_speed.py [--size 512] [--iterations 10] [--repeats 2]
        [--large 1024] [--scales 3] [--scale-iterations 3] [--device auto] [--threads N]
        [--clock auto|wall|cpu]

1. Seconds per L-BFGS iteration of `improved` and `basic` at `--size` px (after two warm-up
   steps), alternating the two `--repeats` times so both see the same machine load; target:
   improved ≤ 1.5× basic.
2. Wall time of a multi-scale run to `--large` px (`--scales` octaves, `--scale-iterations`
   steps at each) against a single-scale `--large` px run of the same iteration count, for both
   methods; target ≤ 1.5×. On CUDA the peak GPU memory of every scale is listed too.
   `--large 0` skips it.

Times are wall-clock seconds on a GPU and process CPU seconds on a CPU (`--clock auto`): on a
shared CPU the wall clock swings with other processes' load, while CPU time (best with
`--threads 1`) follows the work done.
"""

import argparse
import time

import pytorch_lightning as pl
import torch

from nst.api import compose_config, run
from nst.samples import load_sample


class PeakMemory(pl.Callback):
    """Peak GPU memory (GiB) of every fit (one per scale), keyed by the image's long side."""

    def __init__(self):
        self.peaks = {}

    def on_fit_start(self, trainer, module):
        torch.cuda.reset_peak_memory_stats(module.device)

    def on_fit_end(self, trainer, module):
        size = max(module.image.shape[-2:])
        self.peaks[size] = torch.cuda.max_memory_allocated(module.device) / 2**30


def stylize(method: str, device: str, *overrides: str, callbacks=()) -> None:
    """One run on the sample pair (chelsea, mosaic)."""
    cfg = compose_config("stylize", [f"method={method}", f"device={device}", *overrides])
    run(
        cfg,
        load_sample("sample:chelsea"),
        [load_sample("sample:mosaic")],
        progress=False,
        callbacks=list(callbacks),
    )


class StepTimes(pl.Callback):
    """The clock's reading after every optimiser step (CUDA synchronised first)."""

    def __init__(self, clock):
        self.clock, self.times = clock, []

    def on_train_batch_end(self, *args):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(self.clock())


def seconds_per_iteration(method: str, args: argparse.Namespace) -> float:
    """Seconds per step of one run at `--size` px, after two warm-up steps."""
    steps = StepTimes(args.clock)
    stylize(
        method,
        args.device,
        f"size={args.size}",
        f"method.iterations={args.iterations}",
        callbacks=[steps],
    )
    warm = steps.times[2:]
    return (warm[-1] - warm[0]) / (len(warm) - 1)


def run_seconds(method: str, args: argparse.Namespace, *overrides: str, callbacks=()) -> float:
    """Seconds of one whole run (loss network, targets, every scale)."""
    start = args.clock()
    stylize(method, args.device, *overrides, callbacks=callbacks)
    return args.clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--large", type=int, default=1024)
    parser.add_argument("--scales", type=int, default=3)
    parser.add_argument("--scale-iterations", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads (torch default if not given)")
    parser.add_argument("--clock", choices=["auto", "wall", "cpu"], default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = torch.cuda.is_available() and args.device != "cpu"
    clock = "wall" if args.clock == "wall" or (args.clock == "auto" and on_gpu) else "cpu"
    args.clock = time.perf_counter if clock == "wall" else time.process_time
    device = torch.cuda.get_device_name() if on_gpu else "CPU"
    print(
        f"device: {device}, torch threads: {torch.get_num_threads()}, {clock} seconds", flush=True
    )
    compare_iterations(args)
    if args.large:
        compare_scales(args)


def compare_iterations(args: argparse.Namespace) -> None:
    """Seconds per iteration of basic and improved, alternating, best of `--repeats`."""
    timings = {"basic": [], "improved": []}
    for _ in range(args.repeats):
        for method, seconds in timings.items():
            seconds.append(seconds_per_iteration(method, args))
    basic, improved = min(timings["basic"]), min(timings["improved"])
    print(f"\n| s/iteration at {args.size} px | basic | improved | improved / basic |")
    print("|---|---|---|---|")
    print(
        f"| best of {args.repeats} runs of {args.iterations} iterations | {basic:.2f} | "
        f"{improved:.2f} | {improved / basic:.2f} |",
        flush=True,
    )


def compare_scales(args: argparse.Namespace) -> None:
    """Whole-run seconds, single-scale vs multi-scale to `--large` px, for both methods."""
    common = [f"size={args.large}", f"method.iterations={args.scale_iterations}"]
    print(
        f"\n| {args.scale_iterations} iterations per scale | single-scale {args.large} px, s "
        f"| {args.scales} scales to {args.large} px, s | multi / single |"
    )
    print("|---|---|---|---|")
    for method in ("basic", "improved"):
        peaks = [PeakMemory()] if torch.cuda.is_available() and args.device != "cpu" else []
        single = run_seconds(method, args, *common)
        multi = run_seconds(method, args, *common, f"method.scales={args.scales}", callbacks=peaks)
        print(f"| {method} | {single:.1f} | {multi:.1f} | {multi / single:.2f} |", flush=True)
        for report in peaks:
            for size, peak in report.peaks.items():
                print(f"peak GPU memory, {method} at {size} px: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
