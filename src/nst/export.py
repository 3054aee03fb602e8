"""Export trained networks to ONNX or TorchScript, with a parity check.

A fast-method network takes N×3×H×W RGB in [0, 1] with dynamic batch, height and width (any size,
like the eager network) and returns the stylised batch in [0, 1]. An arbitrary-method checkpoint
exports as two graphs: the style predictor (`image` → `embedding`, N×E) and the transfer network
(`image`, `embedding` → `stylized`). Before a file is moved into place, the export is run on
random inputs of sizes it was not traced at and compared with eager PyTorch; a maximum absolute
difference of `TOLERANCE` or more is an error and nothing is written.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.outputs import atomic_file

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
TOLERANCE = 1e-3
TRACE_SIZE = (1, 3, 64, 96)
CHECK_SIZE = (2, 3, 75, 53)  # another batch, odd sizes: proves the axes are dynamic
IMAGE_AXES = {0: "batch", 2: "height", 3: "width"}


@dataclass
class Signature:
    """A graph's named inputs and output: example inputs to trace with and to check against."""

    inputs: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=lambda: {"image": (TRACE_SIZE, CHECK_SIZE)}
    )
    output: str = "stylized"
    axes: dict[str, dict[int, str]] = field(
        default_factory=lambda: {"image": IMAGE_AXES, "stylized": IMAGE_AXES}
    )

    def examples(self, check: bool) -> tuple[Tensor, ...]:
        """Seeded random inputs: images in [0, 1], other inputs standard normal."""
        generator = torch.Generator().manual_seed(int(check))
        tensors = []
        for name, sizes in self.inputs.items():
            size = sizes[int(check)]
            draw = torch.rand if name == "image" else torch.randn
            tensors.append(draw(size, generator=generator))
        return tuple(tensors)


def predictor_signature() -> Signature:
    """The style predictor: `image` (any size) → `embedding` (N×E)."""
    return Signature(output="embedding", axes={"image": IMAGE_AXES, "embedding": {0: "batch"}})


def transformer_signature(embedding_size: int) -> Signature:
    """The conditional transfer network: (`image`, `embedding`) → `stylized`."""
    inputs = {
        "image": (TRACE_SIZE, CHECK_SIZE),
        "embedding": ((TRACE_SIZE[0], embedding_size), (CHECK_SIZE[0], embedding_size)),
    }
    axes = {"image": IMAGE_AXES, "embedding": {0: "batch"}, "stylized": IMAGE_AXES}
    return Signature(inputs=inputs, axes=axes)


def export_onnx(network: nn.Module, path: Path, signature: Signature) -> None:
    """ONNX (opset 17) with the signature's dynamic axes."""
    torch.onnx.export(
        network,
        signature.examples(check=False),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=list(signature.inputs),
        output_names=[signature.output],
        dynamic_axes=signature.axes,
    )


def run_onnx(path: Path, inputs: tuple[Tensor, ...], signature: Signature) -> Tensor:
    """Run an ONNX export with onnxruntime on CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(signature.inputs, inputs, strict=True)}
    return torch.from_numpy(session.run(None, feeds)[0])


def export_torchscript(network: nn.Module, path: Path, signature: Signature) -> None:
    """TorchScript by tracing; sizes stay dynamic because the padding is computed from them."""
    traced = torch.jit.trace(network, signature.examples(check=False), check_trace=False)
    traced.save(str(path))


def run_torchscript(path: Path, inputs: tuple[Tensor, ...], signature: Signature) -> Tensor:
    """Run a TorchScript export (loading it runs no Python code of ours)."""
    return torch.jit.load(str(path), map_location="cpu")(*inputs)


EXPORTERS = {"onnx": (export_onnx, run_onnx), "torchscript": (export_torchscript, run_torchscript)}


@torch.no_grad()
def export(
    network: nn.Module,
    kind: str,
    path: Path,
    signature: Signature | None = None,
    overwrite: bool = True,
) -> float:
    """Export `network` as `kind` (onnx | torchscript) to `path`; returns the parity difference.

    `signature` names the graph's inputs and output (default: a fast-method network's `image` →
    `stylized`). The file is written next to `path` under a temporary name and renamed into
    place only once the parity check passes, so a failed export leaves nothing behind.
    """
    signature = signature or Signature()
    write, run = EXPORTERS[kind]
    network = network.float().eval().cpu()
    with atomic_file(path, overwrite) as temporary, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter notes and TorchScript's deprecation notice
        write(network, temporary, signature)
        inputs = signature.examples(check=True)
        difference = (run(temporary, inputs, signature) - network(*inputs)).abs().max().item()
        if not difference < TOLERANCE:
            raise RuntimeError(
                f"The {kind} export differs from PyTorch by {difference:.2e} (limit {TOLERANCE})."
            )
    return difference
