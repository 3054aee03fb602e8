"""Trained feed-forward networks at inference: read a checkpoint safely, stylise image batches.

A checkpoint is what `train.py` writes (a Lightning checkpoint: `state_dict` + plain
`hyper_parameters`). It is read with `torch.load(..., weights_only=True)`, so opening a downloaded
checkpoint never runs code, and rebuilt without Lightning or the VGG, so start-up stays short.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from nst.errors import UserError
from nst.image import load_image, resize_long_side
from nst.methods.common import torch_device
from nst.networks import TransformNet

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PREFIX = "transform."
MIN_SIDE = 8


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint at `path` as plain tensors and Python values, or a one-sentence error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"Checkpoint not found: {path}; training writes <run dir>/checkpoints/last.ckpt."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if "Unsupported global" in str(error):
            reason = "it holds pickled Python objects, which are unsafe to load"
        elif path.read_bytes()[:2] == b"PK":  # a zip archive, like every torch.save file
            reason = "the file is damaged or truncated"
        else:
            reason = "it is not a PyTorch checkpoint file"
        raise UserError(
            f"Cannot read {path} as a checkpoint ({reason}); use a file written by train.py."
        ) from None
    return checkpoint


def describe(checkpoint) -> str:
    """What a checkpoint that is not a fast-method one holds, for the error message."""
    if not isinstance(checkpoint, dict):
        return f"it holds a {type(checkpoint).__name__}"
    name = (checkpoint.get("hyper_parameters") or {}).get("name")
    if name:
        return f"it was trained by method={name}"
    return "it holds no trained transform network"


def load_network(path: str | Path) -> tuple[TransformNet, dict]:
    """The `TransformNet` of a fast-method checkpoint (eval mode, CPU) and its hyperparameters."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or hparams.get("name") != "fast":
        raise UserError(
            f"{path} is not a fast-method checkpoint ({describe(checkpoint)}); pass one written "
            "by python train.py method=fast."
        )
    state = {
        key.removeprefix(PREFIX): value
        for key, value in checkpoint.get("state_dict", {}).items()
        if key.startswith(PREFIX)
    }
    network = TransformNet(**hparams["network"])
    try:
        network.load_state_dict(state)
    except RuntimeError:
        raise UserError(
            f"{path} does not hold the weights its settings describe (a damaged or edited "
            "checkpoint); train again or fetch the file again."
        ) from None
    return network.eval(), hparams


def style_name(hparams: dict) -> str:
    """The name of the style a checkpoint was trained on (for output file names)."""
    style = hparams.get("style") or {}
    return str(style.get("name") or "stylized")


def check_image_size(image: Tensor, name: str) -> None:
    """Raise a `UserError` for images too small for the network's two stride-2 convs."""
    if min(image.shape[-2:]) < MIN_SIDE:
        height, width = image.shape[-2:]
        raise UserError(f"{name} is {width}×{height} px; the network needs at least {MIN_SIDE} px.")


def autocast(device: torch.device, precision: str):
    """An autocast context for `precision` (fp32 | bf16 | fp16) on `device`."""
    if precision not in PRECISIONS:
        raise UserError(f"Unknown precision '{precision}'; use fp32, bf16 or fp16.")
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def prepare(network: TransformNet, device: torch.device) -> TransformNet:
    """The network on `device`, channels-last (faster convolutions on CPU and GPU)."""
    return network.to(device=device, memory_format=torch.channels_last)


def load_content(path: str | Path, size: int | None) -> Tensor:
    """An input image as 1×3×H×W, long side resized to `size` if given, checked for size."""
    image = load_image(path, size)
    check_image_size(image, str(path))
    return image


@torch.inference_mode()
def stylize_batch(
    network: TransformNet, images: Tensor, device: torch.device, precision: str = "fp32"
) -> Tensor:
    """Stylise an N×3×H×W batch in [0, 1] with a `prepare`d network; returns float32 on CPU."""
    images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        output = network(images)
    return output.float().cpu()


def batch_stylizer(
    network: TransformNet, device: torch.device, precision: str = "fp32"
) -> Callable[[Tensor], Tensor]:
    """A function stylising N×3×H×W float batches already on `device`, output float there.

    The network is `prepare`d once; this is the `nst.video.Stylizer` of the fast method.
    """
    network = prepare(network, device)
    autocast(device, precision)  # an unknown precision fails now, before a video is opened

    @torch.inference_mode()
    def stylize(images: Tensor) -> Tensor:
        with autocast(device, precision):
            return network(images.contiguous(memory_format=torch.channels_last)).float()

    return stylize


def same_size_batches(
    items: Iterable[tuple[str, Tensor]], batch_size: int
) -> Iterator[tuple[list[str], Tensor]]:
    """Group consecutive (name, 1×3×H×W image) pairs of equal size into batches of ≤ batch_size."""
    names, images = [], []
    for name, image in items:
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield names, torch.cat(images)
            names, images = [], []
        names.append(name)
        images.append(image)
    if images:
        yield names, torch.cat(images)


def stylize_image(
    network: TransformNet,
    image: Tensor,
    size: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> Tensor:
    """Stylise one 1×3×H×W image (long side resized to `size` if given); returns it on CPU."""
    if size is not None:
        image = resize_long_side(image, size)
    check_image_size(image, "The input image")
    target = torch_device(device)
    return stylize_batch(prepare(network, target), image, target, precision)
