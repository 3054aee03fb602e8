"""Where a trained network runs at inference: PyTorch (`backend=torch`, the default) or ONNX
Runtime on the CPU (`backend=onnxruntime`).

With onnxruntime the network is exported to ONNX once (`nst.export`, parity-checked against
PyTorch before the file is kept), cached in `~/.cache/nst/onnx/` (or `$XDG_CACHE_HOME`) under the
hash of its weights and graph signature, and run by ONNX Runtime's CPU provider with every graph
optimisation and one thread per PyTorch thread. Images too large for `max_memory` still run tiled
in PyTorch (`nst.tiling`): ONNX Runtime sees whole images only.
"""

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.errors import UserError
from nst.export import Signature, export

BACKENDS = ("torch", "onnxruntime")


def check_backend(backend: str, device: torch.device | None = None, precision: str = "fp32"):
    """Raise a `UserError` unless `backend` is known and can run on `device` at `precision`."""
    if backend not in BACKENDS:
        raise UserError(f"Unknown backend '{backend}'; use {' or '.join(BACKENDS)}.")
    if backend == "onnxruntime" and device is not None and device.type != "cpu":
        raise UserError(
            "backend=onnxruntime runs on the CPU: add device=cpu, or use backend=torch."
        )
    if backend == "onnxruntime" and precision != "fp32":
        raise UserError(f"backend=onnxruntime runs in fp32: drop precision={precision}.")


def cache_folder() -> Path:
    """`$XDG_CACHE_HOME/nst/onnx` (default `~/.cache/nst/onnx`)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "nst" / "onnx"


def network_hash(network: nn.Module, signature: Signature) -> str:
    """sha256 of the network's weights (as float32) and its graph signature."""
    digest = hashlib.sha256(repr(signature).encode())
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def cached_onnx(network: nn.Module, signature: Signature) -> Path:
    """The network's ONNX file, exported on first use; a temporary folder if the cache cannot
    be written (a read-only home)."""
    name = f"{network_hash(network, signature)}.onnx"
    for folder in (cache_folder(), Path(tempfile.gettempdir()) / "nst-onnx"):
        path = folder / name
        if path.is_file():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with torch.inference_mode(False):
                export(network, "onnx", path, signature)  # atomic: whole, or nothing
            return path
        except OSError:
            continue
    raise UserError("backend=onnxruntime could not write its ONNX file; use backend=torch.")


def onnx_runner(network: nn.Module, signature: Signature) -> Callable[..., Tensor]:
    """A function running `network` (CPU, float32) through ONNX Runtime: same inputs, same
    output as calling the network, as float32 CPU tensors."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(
            "backend=onnxruntime needs the onnxruntime package: pip install onnxruntime."
        ) from None
    network = network.float().cpu().eval()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = cached_onnx(network, signature)
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(*inputs: Tensor) -> Tensor:
        feeds = {
            name: tensor.detach().float().cpu().contiguous().numpy()
            for name, tensor in zip(signature.inputs, inputs, strict=True)
        }
        return torch.from_numpy(session.run(None, feeds)[0])

    return run
