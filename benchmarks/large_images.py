"""Large images: peak memory and time of the fast-method network untiled and tiled.

    nice -n 19 python benchmarks/large_images.py [--sizes 1500x1000 6000x4000]
        [--modes untiled default float16 disk] [--max-memory 2.5GiB]

Each (size, mode) runs in its own subprocess, so its peak resident set size (`ru_maxrss`, the
interpreter, torch and the input image included) is its own. Modes: `untiled` (the plain
forward), `default` (`forward_within_memory` with the default budget: untiled when it fits,
else tiled), and `float32`, `float16`, `disk`, `disk-float32` (`tiled_forward` with that storage
and the budget). The network has random weights (memory and time do not depend on training).
On GPU, run with `--device cuda`: the peak is then `torch.cuda.max_memory_allocated`.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from nst.networks import TransformNet
from nst.tiling import DEFAULT_MAX_MEMORY, describe_bytes, forward_within_memory, tiled_forward


def measure(size: str, mode: str, max_memory: str | None, device: str) -> dict:
    """Run one mode in this process; returns seconds and peak bytes."""
    width, height = (int(value) for value in size.split("x"))
    torch.manual_seed(0)
    network = TransformNet().eval().to(device)
    image = torch.rand(1, 3, height, width, device=device)
    last = [-1]

    def progress(done: int, total: int) -> None:
        percent = 100 * done // total
        if percent // 10 != last[0]:
            last[0] = percent // 10
            print(f"    {mode} {size}: {percent}%", file=sys.stderr, flush=True)

    budget = max_memory or DEFAULT_MAX_MEMORY
    start = time.perf_counter()
    with torch.inference_mode():
        if mode == "untiled":
            network(image)
        elif mode == "default":
            forward_within_memory(network, image, max_memory=budget, progress=progress)
        else:
            tiled_forward(network, image, max_memory=budget, storage=mode, progress=progress)
    seconds = time.perf_counter() - start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1500x1000", "6000x4000"])
    parser.add_argument("--modes", nargs="+", default=["untiled", "default"])
    parser.add_argument("--max-memory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.max_memory, args.device)))
        return
    budget = args.max_memory or describe_bytes(DEFAULT_MAX_MEMORY)
    peak_name = "max_memory_allocated" if args.device == "cuda" else "peak RSS"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, max_memory={budget}")
    print(f"{'size':>11} {'mode':>14} {'seconds':>9} {peak_name:>22}")
    for size in args.sizes:
        for mode in args.modes:
            command = [sys.executable, __file__, "--one", size, mode, "--device", args.device]
            command += ["--max-memory", args.max_memory] if args.max_memory else []
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                reason = (result.stderr.strip().splitlines() or ["killed"])[-1]
                print(f"{size:>11} {mode:>14}   failed: {reason}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"{size:>11} {mode:>14} {row['seconds']:9.1f} {describe_bytes(row['peak']):>22}")


if __name__ == "__main__":
    main()
