"""CPU inference of the fast-method transform network: fp32 eager PyTorch next to every other
way of running it on this CPU, in the same run, at equal output.

    nice -n 19 python benchmarks/cpu_inference.py [--sizes 512x512 1920x1080] [--repeats 3]
        [--threads N] [--skip-compile] [--skip-evaluate] [--bf16] [--model wave|CKPT]

For each size it prints seconds per image (best of `--repeats` after a warm-up), the speed-up
over fp32 eager, the largest absolute pixel difference to fp32 eager, and, at the first size,
the relative change of `nst.evaluate.StyleEvaluator`'s content and style distances (a variant is
kept only within 2%). The header measures this CPU's fp32 and bf16 matmul GFLOP/s (2048²) and the
network's GFLOP per image, hence the compute floor. Weights are random (speed does not depend on
training) unless `--model` names a zoo model or checkpoint, whose layout (say, a small
variant's) is then the one timed. Variants:

- channels_last: NHWC tensors and weights, oneDNN's blocked direct convolutions.
- jit.freeze: traced, frozen, `optimize_for_inference` (oneDNN conv/ReLU fusion, folded weights).
- torch.compile: inductor, channels_last.
- onnxruntime: the `nst.export` ONNX graph on the CPU execution provider, all graph optimisations.
- tiled: `nst.tiling.tiled_forward`, 256 px tiles, float32 (and float16) whole-image storage.
- bf16 autocast (`--bf16`): only pays with AVX-512 BF16 or AMX; skipped by default without them.
- bf16 network: what `stylize.py precision=bf16` runs on a CPU (`nst.inference`): a bf16 copy of
  the network, weights and activations, with no per-layer casts (also with `--bf16` only).
"""

import argparse
import copy
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.networks import TransformNet
from nst.tiling import tiled_forward

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared" / "assets" / "images" / "content" / "chicago.jpg"
STYLE = ROOT.parent / "shared" / "assets" / "images" / "style"
Runner = Callable[[Tensor], Tensor]


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 2) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def network_gflop(network: nn.Module, height: int, width: int) -> float:
    """Multiply-adds ×2 of every conv at this image size (the padded-to-4 size the net sees)."""
    total, hooks = 0, []

    def count(module, inputs, output):
        nonlocal total
        kernel = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        total += 2 * kernel * output.numel()

    for module in network.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            hooks.append(module.register_forward_hook(count))
    with torch.no_grad():
        network(torch.rand(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return total / 1e9


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def eager(network: nn.Module) -> Runner:
    return network


def channels_last(network: nn.Module) -> Runner:
    network = network.to(memory_format=torch.channels_last)
    return lambda image: network(image.contiguous(memory_format=torch.channels_last))


def jit_frozen(network: nn.Module, example: Tensor) -> Runner:
    network = network.to(memory_format=torch.channels_last)
    example = example.contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, example, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return lambda image: frozen(image.contiguous(memory_format=torch.channels_last))


def compiled(network: nn.Module) -> Runner:
    network = network.to(memory_format=torch.channels_last)
    run = torch.compile(network, dynamic=False)
    return lambda image: run(image.contiguous(memory_format=torch.channels_last))


def onnx_runtime(network: nn.Module, folder: Path, threads: int) -> Runner:
    import onnxruntime

    from nst.export import Signature, export_onnx

    path = folder / "network.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(network, path, Signature())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda image: torch.from_numpy(session.run(None, {"image": image.numpy()})[0])


def bf16_autocast(network: nn.Module) -> Runner:
    network = network.to(memory_format=torch.channels_last)

    def run(image: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return network(image.contiguous(memory_format=torch.channels_last)).float()

    return run


def stylizer_at(network: nn.Module, precision: str) -> Runner:
    """What `stylize.py precision=…` runs: `nst.inference.batch_stylizer` over a `FastStylizer`
    (for bf16 on the CPU, a bf16 copy of the network: weights and activations)."""
    from nst.inference import FastStylizer, batch_stylizer

    return batch_stylizer(FastStylizer(network), torch.device("cpu"), precision)


def tiled(network: nn.Module, storage: str) -> Runner:
    network = network.to(memory_format=torch.channels_last)
    return lambda image: tiled_forward(network, image, storage=storage, tile=256)


def load_content(height: int, width: int) -> Tensor:
    """The content photo resized to the size (noise if the shared assets are absent)."""
    if not CONTENT.exists():
        return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    from nst.image import load_image

    image = load_image(CONTENT)
    return torch.nn.functional.interpolate(
        image, size=(height, width), mode="bicubic", antialias=True
    ).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-evaluate", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--model", help="a zoo name or fast checkpoint (default: random weights)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    fast_bf16 = bool({"avx512_bf16", "amx_bf16"} & flags)
    fp32_rate = matmul_gflops(torch.float32)
    bf16_rate = matmul_gflops(torch.bfloat16, 2048 if fast_bf16 else 1024)  # slow when emulated
    print(
        f"CPU: {args.threads} threads; torch {torch.__version__}; AVX-512: "
        f"{'avx512f' in flags}, AVX-512 BF16: {'avx512_bf16' in flags}, AMX: {'amx_bf16' in flags}"
    )
    print(f"matmul: fp32 {fp32_rate:.0f} GFLOP/s, bf16 {bf16_rate:.0f} GFLOP/s", flush=True)
    evaluator = None
    if not args.skip_evaluate:
        try:
            from nst.evaluate import StyleEvaluator

            evaluator = StyleEvaluator()
        except Exception as error:  # no offline VGG weights: pixel differences only
            print(f"(no evaluator: {error})")
    style = None
    if evaluator is not None:
        from nst.image import load_image

        style = load_image(sorted(STYLE.glob("*.jpg"))[0])

    torch.manual_seed(0)
    base = TransformNet().eval()
    if args.model:  # a zoo model or checkpoint: its own network (a small variant is thinner)
        from nst.inference import load_stylizer

        base = load_stylizer(args.model, kind="fast").network.eval()
        print(f"network: {args.model}, {sum(p.numel() for p in base.parameters()):,} parameters")
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        for index, size in enumerate(args.sizes):
            width, height = (int(value) for value in size.split("x"))
            image = load_content(height, width)
            gflop = network_gflop(base, height, width)
            print(
                f"\n{width}×{height}: {gflop:.0f} GFLOP per image; floor at the fp32 matmul rate "
                f"{gflop / fp32_rate:.2f} s, at the bf16 rate {gflop / bf16_rate:.2f} s"
            )
            variants: dict[str, Callable[[], Runner]] = {
                "fp32 eager (baseline)": lambda: eager(_copy(base)),
                "channels_last": lambda: channels_last(_copy(base)),
                "jit.freeze (oneDNN fusion)": lambda image=image: jit_frozen(_copy(base), image),
                "torch.compile (inductor)": lambda: compiled(_copy(base)),
                "onnxruntime": lambda: onnx_runtime(_copy(base), Path(folder), args.threads),
                "tiled 256 px, float32": lambda: tiled(_copy(base), "float32"),
                "tiled 256 px, float16": lambda: tiled(_copy(base), "float16"),
                "bf16 autocast": lambda: bf16_autocast(_copy(base)),
                "bf16 network (precision=bf16)": lambda: stylizer_at(_copy(base), "bf16"),
            }
            if args.skip_compile:
                variants.pop("torch.compile (inductor)")
            if not (args.bf16 or fast_bf16):
                variants.pop("bf16 autocast")
                variants.pop("bf16 network (precision=bf16)")
            rows, reference, reference_distances = [], None, None
            for name, build in variants.items():
                try:
                    run = build()
                    output = run(image)  # warm-up (and compilation)
                    seconds = min(
                        _seconds(lambda run=run, image=image: run(image))
                        for _ in range(args.repeats)
                    )
                except Exception as error:
                    print(f"  {name}: failed ({type(error).__name__}: {error})", file=sys.stderr)
                    continue
                reference = output if reference is None else reference
                difference = (output - reference).abs().max().item()
                change = ""
                if evaluator is not None and index == 0:
                    distances = evaluator(output.float(), image, style)
                    reference_distances = reference_distances or distances
                    change = " ".join(
                        f"{100 * (distances[key] / reference_distances[key] - 1):+.2f}%"
                        for key in ("content", "style")
                    )
                rows.append((name, seconds, difference, change))
                print(f"  {name}: {seconds:.3f} s", file=sys.stderr)
            print_table(rows, evaluator is not None and index == 0)
            sys.stdout.flush()
    if not fast_bf16:
        print("\nbf16: this CPU has no AVX-512 BF16/AMX, so bf16 convolutions are emulated.")


def _copy(network: nn.Module) -> nn.Module:
    """A fresh copy of `network` (each variant may change its layout in place)."""
    return copy.deepcopy(network).eval()


def print_table(rows: list[tuple[str, float, float, str]], evaluated: bool) -> None:
    baseline = rows[0][1]
    header = f"{'variant':30} {'s/image':>9} {'× fp32 eager':>13} {'max |Δ|':>9}"
    print(header + ("  content, style distance Δ" if evaluated else ""))
    for name, seconds, difference, change in rows:
        print(f"{name:30} {seconds:9.3f} {baseline / seconds:13.2f} {difference:9.1e}  {change}")


if __name__ == "__main__":
    main()
