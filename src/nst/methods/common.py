"""Small pieces every method shares: device choice, weight checks and a quiet Lightning."""

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence

import torch

from nst.errors import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtypes


def accelerator(device: str) -> str:
    """Lightning accelerator for the `device` setting: auto (a CUDA GPU, else Apple's MPS, else
    the CPU), cpu, cuda or mps."""
    if device not in DEVICES:
        raise UserError(f"Unknown device '{device}'; use auto, cpu, cuda or mps.")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is available; use device=cpu or device=auto.")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UserError("device=mps but Apple's MPS is not available; use device=cpu or auto.")
    if device == "auto":
        if torch.cuda.is_available():
            return "gpu"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return {"cuda": "gpu", "mps": "mps", "cpu": "cpu"}[device]


def torch_device(device: str) -> torch.device:
    """torch.device for the `device` setting."""
    return torch.device({"gpu": "cuda", "mps": "mps", "cpu": "cpu"}[accelerator(device)])


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of `precision` (fp32 | bf16 | fp16); None for fp32."""
    if precision not in PRECISIONS:
        raise UserError(f"Unknown precision '{precision}'; use auto, fp32, bf16 or fp16.")
    return PRECISIONS[precision]


def resolve_precision(precision: str, device: torch.device, network: bool = True) -> str:
    """`precision` with `auto` made concrete: bf16 for a trained network (`network`) on a CPU
    that computes bf16 natively (AMX, AVX-512 BF16), where it runs about 3× faster with the
    evaluator's distances within 0.2% of fp32's (README, "Stylising"); fp32 everywhere else:
    the optimisation methods, GPUs, and CPUs that would emulate bf16."""
    if precision != "auto":
        autocast_dtype(precision)  # an unknown precision fails here
        return precision
    native = device.type == "cpu" and native_on_cpu("bf16")
    return "bf16" if network and native else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """An autocast context for `precision` (fp32 | bf16 | fp16) on `device`."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def native_on_cpu(precision: str) -> bool:
    """Whether this CPU computes `precision` natively (oneDNN's check: AVX-512 BF16/FP16, AMX)."""
    if precision == "bf16":
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return precision == "fp32" or torch.ops.mkldnn._is_mkldnn_fp16_supported()


def runs_natively(precision: str, device: torch.device) -> bool:
    """Whether `device` computes `precision` natively: always off the CPU, else oneDNN's check."""
    return device.type != "cpu" or native_on_cpu(precision)


def note_if_emulated(precision: str, device: torch.device) -> None:
    """Say on stderr when this CPU has no native `precision`: PyTorch then emulates it, many
    times slower than fp32 (measured: bf16 matmul 1 GFLOP/s against 116 on an AVX2 EPYC)."""
    if autocast_dtype(precision) is None:
        return
    if not runs_natively(precision, device):
        print(
            f"note: this CPU has no native {precision} arithmetic, so precision={precision} "
            "runs emulated, many times slower than fp32.",
            file=sys.stderr,
        )


def check_loss_weights(settings: Mapping) -> None:
    """content_weight, style_weight and lr (when set) must be positive; tv_weight zero or more."""
    for knob in ("content_weight", "style_weight", "lr"):
        value = settings.get(knob)
        if value is not None and value <= 0:
            raise UserError(f"method.{knob} must be positive, got {value}.")
    if settings["tv_weight"] < 0:
        raise UserError(f"method.tv_weight must be zero or positive, got {settings['tv_weight']}.")


def check_style_weights(styles: Sequence, style_weights: Sequence[float] | None) -> None:
    """Raise a `UserError` unless the blend weights fit the styles."""
    if style_weights is None:
        return
    if len(style_weights) != len(styles):
        raise UserError(
            f"{len(styles)} style images but {len(style_weights)} style_weights; "
            "give one weight per style."
        )
    if any(weight < 0 for weight in style_weights) or sum(style_weights) <= 0:
        raise UserError("style_weights must be non-negative with a positive sum.")


def quiet_lightning() -> None:
    """Silence Lightning's start-up banners and tips; warnings and errors still show."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    warnings.filterwarnings("ignore", message=".*`flops_per_batch`.*")  # images/s is enough
    warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")  # run dir has .hydra
    # A resume mid-epoch reshuffles the photos: harmless for training on random crops.
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")


def available_memory(device: torch.device) -> int:
    """Bytes free for a new computation: the GPU's free memory, else the machine's available
    RAM (Linux's MemAvailable; elsewhere all physical memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
