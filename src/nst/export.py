"""Export a trained transform network to ONNX or TorchScript, with a parity check.

Both exports take N×3×H×W RGB in [0, 1] with dynamic batch, height and width (any size, like the
eager network) and return the stylised batch in [0, 1]. Before the file is moved into place, the
export is run on a random image of a size it was not traced at and compared with eager PyTorch;
a maximum absolute difference of `TOLERANCE` or more is an error and nothing is written.
"""

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from nst.networks import TransformNet

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
TOLERANCE = 1e-3
TRACE_SIZE = (1, 3, 64, 96)
CHECK_SIZE = (2, 3, 75, 53)  # another batch, odd sizes: proves the axes are dynamic


def export_onnx(network: TransformNet, path: Path) -> None:
    """ONNX (opset 17) with dynamic batch, height and width axes."""
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        network,
        (torch.rand(TRACE_SIZE),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["stylized"],
        dynamic_axes={"image": axes, "stylized": axes},
    )


def run_onnx(path: Path, image: Tensor) -> Tensor:
    """Run an ONNX export with onnxruntime on CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"image": image.numpy()})[0])


def export_torchscript(network: TransformNet, path: Path) -> None:
    """TorchScript by tracing; sizes stay dynamic because the padding is computed from them."""
    traced = torch.jit.trace(network, torch.rand(TRACE_SIZE), check_trace=False)
    traced.save(str(path))


def run_torchscript(path: Path, image: Tensor) -> Tensor:
    """Run a TorchScript export (loading it runs no Python code of ours)."""
    return torch.jit.load(str(path), map_location="cpu")(image)


EXPORTERS = {"onnx": (export_onnx, run_onnx), "torchscript": (export_torchscript, run_torchscript)}


@torch.no_grad()
def export(network: TransformNet, kind: str, path: Path) -> float:
    """Export `network` as `kind` (onnx | torchscript) to `path`; returns the parity difference.

    The file is written next to `path` under a temporary name and renamed into place only once
    the parity check passes, so a failed export leaves nothing behind.
    """
    write, run = EXPORTERS[kind]
    network = network.float().eval().cpu()
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent
    )
    os.close(handle)
    temporary = Path(temporary)
    try:
        with warnings.catch_warnings():  # exporter notes and TorchScript's deprecation notice
            warnings.simplefilter("ignore")
            write(network, temporary)
            image = torch.rand(CHECK_SIZE, generator=torch.Generator().manual_seed(0))
            difference = (run(temporary, image) - network(image)).abs().max().item()
        if not difference < TOLERANCE:
            raise RuntimeError(
                f"The {kind} export differs from PyTorch by {difference:.2e} (limit {TOLERANCE})."
            )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return difference
