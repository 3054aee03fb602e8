"""Trained feed-forward networks at inference: read a checkpoint safely, stylise image batches.

A checkpoint is what `train.py` writes (a Lightning checkpoint: `state_dict` + plain
`hyper_parameters`). It is read with `torch.load(..., weights_only=True)`, so opening a downloaded
checkpoint never runs code, and rebuilt without Lightning or the VGG, so start-up stays short.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.errors import UserError
from nst.image import load_image, resize_long_side
from nst.methods.common import torch_device
from nst.networks import ConditionalTransformNet, TransformNet

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
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


def read_method_checkpoint(path: str | Path, method: str) -> tuple[dict, dict]:
    """(checkpoint, hyperparameters) of a `method` checkpoint; any other file is a UserError."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or hparams.get("name") != method:
        article = "an" if method[0] in "aeiou" else "a"
        raise UserError(
            f"{path} is not {article} {method}-method checkpoint ({describe(checkpoint)}); pass "
            f"one written by python train.py method={method}."
        )
    return checkpoint, hparams


def load_network(path: str | Path) -> tuple[TransformNet, dict]:
    """The `TransformNet` of a fast-method checkpoint (eval mode, CPU) and its hyperparameters."""
    checkpoint, hparams = read_method_checkpoint(path, "fast")
    state = module_state(checkpoint, "transform")
    network = TransformNet(**hparams["network"])
    try:
        network.load_state_dict(state)
    except RuntimeError:
        raise UserError(
            f"{path} does not hold the weights its settings describe (a damaged or edited "
            "checkpoint); train again or fetch the file again."
        ) from None
    return network.eval(), hparams


def checkpoint_method(path: str | Path) -> str | None:
    """The method (`fast`, `arbitrary`) that wrote the checkpoint at `path`, if it says."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    return hparams.get("name") if isinstance(hparams, dict) else None


def module_state(checkpoint: dict, prefix: str) -> dict[str, Tensor]:
    """The entries of the checkpoint's `state_dict` under `prefix.`, without it."""
    return {
        key.removeprefix(f"{prefix}."): value
        for key, value in checkpoint.get("state_dict", {}).items()
        if key.startswith(f"{prefix}.")
    }


def load_arbitrary(path: str | Path) -> tuple[nn.Module, ConditionalTransformNet, dict]:
    """(style predictor P, transfer network T, hyperparameters) of an arbitrary-method checkpoint.

    P's VGG is not in the checkpoint: it is rebuilt from the arch and weight source training
    resolved (`hyper_parameters.loss_net`), so stylising needs those weights (Caffe: offline).
    """
    from nst.predictors import build_predictor
    from nst.vgg import LossNetwork

    checkpoint, hparams = read_method_checkpoint(path, "arbitrary")
    try:
        vgg = hparams["loss_net"]
        loss_network = LossNetwork(vgg["arch"], vgg["weights"], hparams["pooling"])
    except UserError as error:
        raise UserError(
            f"The style predictor of {path} needs the {vgg['weights']} {vgg['arch']} weights it "
            f"was trained with: {error}"
        ) from None
    except (KeyError, TypeError):
        raise UserError(
            f"{path} lacks the settings of its networks (a damaged checkpoint)."
        ) from None
    try:
        predictor = build_predictor(hparams["predictor"], loss_network, pretrained=False)
        transform = ConditionalTransformNet(
            **hparams["network"], embedding_size=hparams["predictor"]["embedding_size"]
        )
        predictor.load_state_dict(module_state(checkpoint, "predictor"))  # the VGG is not in it
        transform.load_state_dict(module_state(checkpoint, "transform"))
    except (RuntimeError, KeyError, TypeError):
        raise UserError(
            f"{path} does not hold the weights its settings describe (a damaged or edited "
            "checkpoint); train again or fetch the file again."
        ) from None
    return predictor.eval(), transform.eval(), hparams


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


class StyledTransform(nn.Module):
    """An arbitrary-style network set to one style: image → stylised image, like `TransformNet`.

    The style's embedding S_style is computed once (`style_embedding`). With `strength` w < 1
    each image is stylised with S = w·S_style + (1 − w)·P(image), the paper's interpolation
    with the image's own embedding (Ghiasi et al. §4, identity interpolation; w = 0 ≈ the photo).
    """

    def __init__(
        self,
        predictor: nn.Module,
        transform: ConditionalTransformNet,
        embedding: Tensor,
        strength: float = 1.0,
        predictor_size: int | None = 256,
    ):
        super().__init__()
        if not 0.0 <= strength <= 1.0:
            raise UserError(f"strength must be between 0 and 1, got {strength}.")
        self.predictor, self.transform = predictor, transform
        self.register_buffer("embedding", embedding.detach().reshape(1, -1))
        self.strength, self.predictor_size = float(strength), predictor_size

    def forward(self, image: Tensor) -> Tensor:
        from nst.predictors import resize_for_predictor

        embedding = self.embedding.expand(len(image), -1)
        if self.strength < 1.0:
            own = self.predictor(resize_for_predictor(image, self.predictor_size))
            embedding = torch.lerp(own, embedding, self.strength)
        return self.transform(image, embedding)


@torch.no_grad()
def style_embedding(
    predictor: nn.Module,
    styles: list[Tensor],
    weights: list[float] | None = None,
    size: int | None = 256,
) -> Tensor:
    """S = Σ_i w_i P(style_i) / Σ w (1×E): one style, or a weighted mix of several (the paper's
    convex combination of embeddings). Each style's long side is resized to `size` first."""
    from nst.methods.basic import check_style_weights
    from nst.predictors import resize_for_predictor

    if not styles:
        raise UserError("An arbitrary-style checkpoint needs a style image: add style=PATH.")
    check_style_weights(styles, weights)
    weights = [1.0] * len(styles) if weights is None else [float(w) for w in weights]
    embeddings = [predictor(resize_for_predictor(style, size)) for style in styles]
    return sum(w * e for w, e in zip(weights, embeddings, strict=True)) / sum(weights)


def arbitrary_network(
    path: str | Path,
    styles: list[Tensor],
    weights: list[float] | None = None,
    strength: float = 1.0,
    style_size: int | None = 256,
) -> StyledTransform:
    """The network of an arbitrary-method checkpoint set to `styles` (mixed by `weights`)."""
    predictor, transform, _ = load_arbitrary(path)
    embedding = style_embedding(predictor, styles, weights, style_size)
    return StyledTransform(predictor, transform, embedding, strength, style_size).eval()
