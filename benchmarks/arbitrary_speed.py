"""Arbitrary-method speed: plain fp32 eager PyTorch next to the optimised paths, in the same run.

    python benchmarks/arbitrary_speed.py                 # GPU: 256 px batch 16 / 512×512 batch 16
    python benchmarks/arbitrary_speed.py --device cpu    # CPU: 256 px batch 4 / 512×512 batch 1
        [--train-size 256] [--train-batch 16] [--frame 512 512] [--frame-batch 16]
        [--steps 10] [--skip-compile] [--skip-training] [--augment-sizes 128 224]

Training figures are images/s of the real training step (style predictor on the style batch,
transfer network forward, VGG16 loss on output, photo and style, backward, Adam) on batches
already on the device; inference figures are frames/s of the transfer network with a cached
style embedding (the predictor runs once per style, reported apart). Ratios are to the fp32
eager row. Last, `StyleAugment()` with no arguments (the shipped model) in images/s at each
of `--augment-sizes`. The variants and helpers are `fast_speed.py`'s. The VGG has random
weights: the speed is that of the real network.
"""

import argparse
import contextlib
import sys

import torch
from fast_speed import CPU_SKIPS, VARIANTS, per_second, print_table, set_tf32
from hydra.utils import instantiate

from nst.api import compose_config
from nst.augment import StyleAugment
from nst.networks import ConditionalTransformNet


def training_rate(variant, size: int, batch: int, steps: int, device: torch.device) -> float:
    """Images/s of ArbitraryStyle's training step (the module train.py builds)."""
    dtype, channels_last, compiled, tf32 = variant
    set_tf32(tf32)
    cfg = compose_config(
        "train",
        [
            "method=arbitrary",
            "data=synthetic",
            "loss_net.weights=random",
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
    style = torch.rand(batch, 3, size, size, device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            embedding, targets = module.encode_styles(style)
            total = module.loss(module(content, embedding), content=content, style=targets)["total"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()

    return per_second(step, batch, steps, device)


@torch.inference_mode()
def inference_rate(variant, frame, batch: int, steps: int, device: torch.device) -> float:
    """Frames/s of the transfer network with one cached style embedding."""
    dtype, channels_last, compiled, tf32 = variant
    set_tf32(tf32)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network = ConditionalTransformNet().eval().to(device, memory_format=memory_format)
    run = torch.compile(network) if compiled else network
    frames = torch.rand(batch, 3, *frame, device=device).contiguous(memory_format=memory_format)
    embedding = torch.randn(1, 100, device=device).expand(batch, -1)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            run(frames, embedding)

    return per_second(step, batch, steps, device)


@torch.inference_mode()
def predictor_milliseconds(size: int, steps: int, device: torch.device) -> float:
    """Milliseconds to embed one style image (long side `size`) with the default predictor."""
    cfg = compose_config("train", ["method=arbitrary", "data=synthetic", "loss_net.weights=random"])
    predictor = instantiate(cfg.method, _convert_="all").predictor.eval().to(device)
    style = torch.rand(1, 3, size, size, device=device)
    return 1000 / per_second(lambda: predictor(style), 1, steps, device)


@torch.inference_mode()
def augment_rate(size: int, batch: int, steps: int, device: torch.device) -> float:
    """Images/s of `StyleAugment()` out of the box (the shipped model and style distribution,
    p = 1, α = 0.5) on batches of `size`-px images."""
    augment = StyleAugment(p=1.0).to(device)
    images = torch.rand(batch, 3, size, size, device=device)
    return per_second(lambda: augment(images), batch, steps, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--train-batch", type=int)
    parser.add_argument("--frame", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--frame-batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-training", action="store_true", help="inference rows only")
    parser.add_argument("--augment-sizes", type=int, nargs="*", default=[128, 224])
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    train_batch = args.train_batch or (16 if gpu else 4)
    frame_batch = args.frame_batch or (16 if gpu else 1)
    steps = args.steps or (20 if gpu else 3)
    variants = {
        name: variant
        for name, variant in VARIANTS.items()
        if (gpu or name not in CPU_SKIPS) and not (args.skip_compile and variant[2])
    }
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")

    if not args.skip_training:
        rows = []
        for label, variant in variants.items():
            rate = training_rate(variant, args.train_size, train_batch, steps, device)
            rows.append((label, rate))
            print(f"  train  {label}: {rate:.2f} images/s", file=sys.stderr)
        print_table(f"training, {args.train_size} px, batch {train_batch}", "images/s", rows)

    rows = []
    for label, variant in variants.items():
        rows.append((label, inference_rate(variant, args.frame, frame_batch, steps, device)))
        print(f"  infer  {label}: {rows[-1][1]:.2f} frames/s", file=sys.stderr)
    frame = f"{args.frame[1]}×{args.frame[0]}"
    print_table(f"inference, {frame}, batch {frame_batch}, cached embedding", "frames/s", rows)
    milliseconds = predictor_milliseconds(256, steps, device)
    print(f"\nstyle embedding, one 256 px style, fp32 eager: {milliseconds:.1f} ms")
    for size in args.augment_sizes:
        rate = augment_rate(size, train_batch, steps, device)
        print(
            f"StyleAugment() (shipped model), {size} px, batch {train_batch}: {rate:.1f} images/s"
        )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
