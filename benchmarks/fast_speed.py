"""Fast-method speed: plain fp32 eager PyTorch next to the optimised paths, in the same run.

    python benchmarks/fast_speed.py                 # GPU: 256 px batch 16 / 1920×1080 batch 8
    python benchmarks/fast_speed.py --device cpu    # CPU: 256 px batch 4 / 512×512 batch 1
        [--train-size 256] [--train-batch 16] [--frame 1080 1920] [--frame-batch 8]
        [--steps 10] [--skip-compile] [--skip-cli]

Training figures are images/s of the real training step (transform net forward, VGG16 loss on
output and photo, backward, Adam) on batches already on the device; inference figures are
frames/s of the transform net alone. Every row is measured after warm-up, and its ratio is to the
fp32 eager row. The last rows time the command-line path on one image: `stylize.py ckpt=…
input=…` as a subprocess (start-up included) and the same work in-process (checkpoint load, read,
stylise, write). The VGG has random weights: the speed is that of the real network.
"""

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from nst.api import compose_config
from nst.image import save_image
from nst.inference import load_stylizer, stylize_image
from nst.networks import TransformNet

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT.parent / "shared" / "assets" / "images" / "style"

# name → (autocast dtype, channels_last, torch.compile, TF32 matmuls/convs)
VARIANTS = {
    "fp32 eager (baseline)": (None, False, False, False),
    "tf32": (None, False, False, True),
    "channels_last": (None, True, False, False),
    "bf16 autocast": (torch.bfloat16, False, False, False),
    "bf16 + channels_last": (torch.bfloat16, True, False, True),
    "fp16 + channels_last": (torch.float16, True, False, True),
    "bf16 + channels_last + compile": (torch.bfloat16, True, True, True),
}
CPU_SKIPS = {"tf32", "fp16 + channels_last"}  # no TF32 on CPU; fp16 convs are emulated there


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_second(step, items: int, steps: int, device: torch.device, warmup: int = 2) -> float:
    """`items` × `steps` / seconds for `steps` calls of `step`, after `warmup` calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return items * steps / (time.perf_counter() - start)


def set_tf32(enabled: bool) -> None:
    """Allow (or forbid) TF32 tensor cores for float32 matmuls and convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def training_rate(variant, size: int, batch: int, steps: int, device: torch.device) -> float:
    """Images/s of FastStyle's training step (the module train.py builds, VGG16 loss, Adam)."""
    dtype, channels_last, compiled, tf32 = variant
    set_tf32(tf32)
    cfg = compose_config(
        "train",
        [
            "method=fast",
            "styles@style=wave",
            "loss_net.weights=random",
            f"style_dir={STYLE}",
            f"method.channels_last={channels_last}",
            f"method.compile={compiled}",
        ],
    )
    module = instantiate(cfg.method, _convert_="all")
    module.setup("fit")
    module.to(device)
    optimizer = module.configure_optimizers()["optimizer"]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    content = torch.rand(batch, 3, size, size, device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            total = module.loss(module(content), content=content)["total"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()

    return per_second(step, batch, steps, device)


@torch.inference_mode()
def inference_rate(variant, frame, batch: int, steps: int, device: torch.device) -> float:
    """Frames/s of the transform network alone on a batch of frames."""
    dtype, channels_last, compiled, tf32 = variant
    set_tf32(tf32)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network = TransformNet().eval().to(device, memory_format=memory_format)
    run = torch.compile(network) if compiled else network
    frames = torch.rand(batch, 3, *frame, device=device).contiguous(memory_format=memory_format)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            run(frames)

    return per_second(step, batch, steps, device)


def write_checkpoint(path: Path) -> None:
    """A checkpoint in train.py's format around an untrained network (same cost to run)."""
    network = TransformNet()
    state = {f"transform.{key}": value for key, value in network.state_dict().items()}
    hparams = {"name": "fast", "network": {}, "style": {"name": "bench"}}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)


def cli_seconds(size: int, device: str, precision: str) -> tuple[float, float]:
    """(subprocess wall s, in-process s) to stylise one size×size image through the CLI path."""
    with tempfile.TemporaryDirectory() as folder:
        checkpoint, photo = Path(folder) / "bench.ckpt", Path(folder) / "photo.jpg"
        write_checkpoint(checkpoint)
        save_image(torch.rand(1, 3, size, size), photo)
        command = [
            sys.executable,
            str(ROOT / "stylize.py"),
            f"ckpt={checkpoint}",
            f"input={photo}",
            f"device={device}",
            f"precision={precision}",
            "overwrite=true",
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=folder)
        wall = time.perf_counter() - start
        from nst.image import load_image

        times = []
        for _ in range(3):
            start = time.perf_counter()
            network = load_stylizer(checkpoint)
            output = stylize_image(network, load_image(photo), None, device, precision)
            save_image(output, Path(folder) / "out.png")
            times.append(time.perf_counter() - start)
        return wall, min(times)


def print_table(title: str, unit: str, rows: list[tuple[str, float]]) -> None:
    """Rows of (variant, rate) with each rate's ratio to the first row's."""
    baseline = rows[0][1]
    print(f"\n{title}\n{'variant':34} {unit:>12} {'× fp32 eager':>13}")
    for name, value in rows:
        print(f"{name:34} {value:12.2f} {value / baseline:13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--train-batch", type=int)
    parser.add_argument("--frame", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--frame-batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cli-size", type=int, default=512)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    train_batch = args.train_batch or (16 if gpu else 4)
    frame = args.frame or ((1080, 1920) if gpu else (512, 512))
    frame_batch = args.frame_batch or (8 if gpu else 1)
    steps = args.steps or (20 if gpu else 3)
    variants = {
        name: variant
        for name, variant in VARIANTS.items()
        if (gpu or name not in CPU_SKIPS) and not (args.skip_compile and variant[2])
    }
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")

    rows = []
    for label, variant in variants.items():
        rows.append((label, training_rate(variant, args.train_size, train_batch, steps, device)))
        print(f"  train  {label}: {rows[-1][1]:.2f} images/s", file=sys.stderr)
    print_table(f"training, {args.train_size} px, batch {train_batch}", "images/s", rows)
    best = max(rows[1:] or rows, key=lambda row: row[1])
    print(f"paper schedule, 160k images at the best rate: {160_000 / best[1] / 60:.1f} min")

    rows = []
    for label, variant in variants.items():
        rows.append((label, inference_rate(variant, frame, frame_batch, steps, device)))
        print(f"  infer  {label}: {rows[-1][1]:.2f} frames/s", file=sys.stderr)
    print_table(f"inference, {frame[1]}×{frame[0]}, batch {frame_batch}", "frames/s", rows)

    if not args.skip_cli:
        print(f"\nstylize.py ckpt=… input=<{args.cli_size}×{args.cli_size} image>, one image:")
        for precision in ("fp32", "bf16"):
            wall, in_process = cli_seconds(args.cli_size, device.type, precision)
            print(
                f"  precision={precision}: {wall:.2f} s wall with start-up, {in_process:.2f} s "
                "in-process (load checkpoint, read, stylise, write)"
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
