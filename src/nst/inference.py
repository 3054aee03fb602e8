"""Trained feed-forward networks at inference: one loader, one kind of object.

`load_stylizer(source, …)` reads a train.py checkpoint or a zoo model (`nst.zoo`) once, looks the
method that wrote it up in `KINDS` and returns a `Stylizer`: an `nn.Module` mapping N×3×H×W
images in [0, 1] to stylised ones, which images, folders, videos, export, `nst.stylize` and
`StyleAugment` all take. Checkpoints are read with `torch.load(..., weights_only=True)`, so opening
a downloaded one never runs code, and rebuilt without Lightning. Adding a method's inference is
one `Stylizer` subclass and one `KINDS` entry.
"""

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from nst import tiling
from nst.backends import check_backend, onnx_runner
from nst.errors import UserError
from nst.export import Signature, predictor_signature, transformer_signature
from nst.image import check_color_mode, keep_content_colors, long_side_shape, resize_long_side
from nst.methods.common import (
    autocast,
    available_memory,
    check_style_weights,
    note_if_emulated,
    resolve_precision,
    torch_device,
)
from nst.networks import MIN_SIDE, ConditionalTransformNet, TransformNet

# Whole-image bytes per output pixel besides the network (tiled within max_memory): the input and
# output in float32 (12 B each), the resize and the 8-bit copies for saving.
WHOLE_IMAGE_BYTES_PER_PIXEL = 40
DAMAGED = (
    "does not hold the weights its settings describe (a damaged or edited checkpoint); train "
    "again or fetch the file again."
)


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


def read_source(source: str | Path) -> tuple[dict, str]:
    """(checkpoint, its name in messages) of `source`: a zoo model's name, or a checkpoint path.

    A `Path` is always a file; a string is a zoo model when the zoo has one of that name, and a
    bare word that is neither a model nor a file is an unknown model (the error lists the zoo).
    """
    from nst import zoo

    if isinstance(source, str) and source in zoo.names():
        return zoo.read_model(source), f"model {source}"
    path = Path(source)
    if isinstance(source, str) and not path.exists() and not path.suffix and path.name == source:
        zoo.model_path(source)  # raises: "Unknown model …; the zoo has: …"
    return read_checkpoint(path), str(path)


def describe(checkpoint) -> str:
    """What a checkpoint holds, for the error about its kind."""
    if not isinstance(checkpoint, dict):
        return f"it holds a {type(checkpoint).__name__}"
    name = (checkpoint.get("hyper_parameters") or {}).get("name")
    if name:
        return f"it was trained by method={name}"
    return "it holds no trained transform network"


def module_state(checkpoint: dict, prefix: str) -> dict[str, Tensor]:
    """The entries of the checkpoint's `state_dict` under `prefix.`, without it."""
    return {
        key.removeprefix(f"{prefix}."): value
        for key, value in checkpoint.get("state_dict", {}).items()
        if key.startswith(f"{prefix}.")
    }


def check_image_size(image: Tensor, name: str) -> None:
    """Raise a `UserError` for images too small for the network's two stride-2 convs."""
    if min(image.shape[-2:]) < MIN_SIDE:
        height, width = image.shape[-2:]
        raise UserError(f"{name} is {width}×{height} px; the network needs at least {MIN_SIDE} px.")


def check_whole_image_fits(height: int, width: int) -> None:
    """Refuse, before any work, an image whose whole-image tensors would not fit in this
    machine's memory, naming the largest size that would (the network's own activations are
    bounded by tiling, `max_memory`; the photo and its stylised copy are not)."""
    needed = height * width * WHOLE_IMAGE_BYTES_PER_PIXEL
    available = available_memory(torch.device("cpu"))
    if needed > available:
        # Half the free memory for these tensors leaves the other half to the network's tiles.
        largest = int(max(height, width) * (available / 2 / needed) ** 0.5) // 16 * 16
        raise UserError(
            f"A {width}×{height} px output needs about {needed / 2**30:.0f} GiB for the photo and "
            f"its stylised copy alone, and {available / 2**30:.1f} GiB is free; the largest size "
            f"that fits is about size={largest}."
        )


class Stylizer(nn.Module):
    """A trained network ready to stylise: `forward` maps N×3×H×W in [0, 1] to the stylised batch,
    with the content's colours kept if `preserve_color` says so (luminance | histogram)."""

    takes_styles: ClassVar[bool] = False  # True: styles are given at use (arbitrary method)

    def __init__(
        self,
        hparams: dict | None,
        label: str,
        strength: float,
        preserve_color: str,
        max_memory: int | str | None = None,
        backend: str = "torch",
    ):
        super().__init__()
        if not 0.0 <= strength <= 1.0:
            raise UserError(f"strength must be between 0 and 1, got {strength}.")
        check_color_mode(preserve_color)
        check_backend(backend)
        self.hparams, self.label = hparams or {}, label
        self.strength, self.preserve_color = float(strength), preserve_color
        # The network's activations stay within this budget: larger images run tiled, exactly.
        self.max_memory = tiling.parse_memory(max_memory) or tiling.DEFAULT_MAX_MEMORY
        self.backend, self.runners = backend, {}

    def run_network(self, network: nn.Module, images: Tensor, *embedding: Tensor) -> Tensor:
        """`network(images, *embedding)`, tiled with whole-image statistics (`nst.tiling`) when
        its activations would not fit `max_memory`, with a progress bar over the tiles; whole
        images run on `backend` (`nst.backends`)."""
        if not isinstance(network, TransformNet | ConditionalTransformNet):
            return network(images, *embedding)  # a stand-in network: nothing to tile
        return tiling.forward_within_memory(
            network,
            images,
            *embedding,
            max_memory=self.max_memory,
            progress=tiling.progress_bar(),
            whole=self.runner(network),
        )

    def runner(self, network: nn.Module) -> Callable[..., Tensor] | None:
        """What runs `network` on whole images: None for PyTorch itself (or, under CPU autocast,
        its reduced-precision copy), else the backend's runner, built (for onnxruntime:
        exported) when first called."""
        if self.backend == "torch":
            return self.reduced_precision_runner(network)

        def run(*inputs: Tensor) -> Tensor:
            if id(network) not in self.runners:
                (signature,) = [sig for graph, sig in self.graphs().values() if graph is network]
                self.runners[id(network)] = onnx_runner(network, signature)
            return self.runners[id(network)](*inputs)

        return run

    def reduced_precision_runner(self, network: nn.Module) -> Callable[..., Tensor] | None:
        """Under CPU autocast (precision=bf16|fp16): a copy of `network` in that dtype, weights
        and activations, channels_last, with autocast off; else None.

        oneDNN then runs every layer natively, where autocast casts each activation back and
        forth around the normalisations: a 1920×1080 frame of the zoo's wave took 1.38 s
        against autocast's 2.38 s (fp32 eager: 4.66 s) on a 2-core CPU with AMX, in one run of
        `benchmarks/cpu_inference.py --model wave --bf16`.
        """
        if not torch.is_autocast_enabled("cpu"):
            return None
        dtype = torch.get_autocast_dtype("cpu")
        key = (id(network), dtype)
        if key not in self.runners:
            cast = copy.deepcopy(network).to(dtype=dtype, memory_format=torch.channels_last)
            self.runners[key] = cast.eval().requires_grad_(False)

        def run(images: Tensor, *embedding: Tensor) -> Tensor:
            with torch.autocast("cpu", enabled=False):
                images = images.to(dtype).contiguous(memory_format=torch.channels_last)
                return self.runners[key](images, *(e.to(dtype) for e in embedding)).float()

        return run

    @property
    def style_name(self) -> str | None:
        """The style the network was trained on (None when styles are given at use)."""
        return None

    def transfer(self, images: Tensor) -> Tensor:
        """The stylised batch, before colour preservation."""
        raise NotImplementedError

    def graphs(self) -> dict[str, tuple[nn.Module, Signature]]:
        """The networks to export, by part name ("" for a single graph), with their signatures."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        output = self.transfer(images)
        if self.preserve_color == "none":
            return output
        with torch.autocast(images.device.type, enabled=False):
            return keep_content_colors(output.float(), images.float(), self.preserve_color)


class FastStylizer(Stylizer):
    """A fast-method `TransformNet` T in its trained style. With `strength` s < 1 the output is
    s·T(x) + (1 − s)·x, a blend between the photo and the full stylisation."""

    def __init__(
        self,
        network: TransformNet,
        hparams: dict | None = None,
        label: str = "The network",
        strength: float = 1.0,
        preserve_color: str = "none",
        max_memory: int | str | None = None,
        backend: str = "torch",
    ):
        super().__init__(hparams, label, strength, preserve_color, max_memory, backend)
        self.network = network

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, label: str, **settings) -> "FastStylizer":
        hparams = checkpoint["hyper_parameters"]
        network = TransformNet(**hparams["network"])
        try:
            network.load_state_dict(module_state(checkpoint, "transform"))
        except RuntimeError:
            raise UserError(f"{label} {DAMAGED}") from None
        return cls(network, hparams, label, **settings)

    @property
    def style_name(self) -> str:
        return str((self.hparams.get("style") or {}).get("name") or "stylized")

    def transfer(self, images: Tensor) -> Tensor:
        output = self.run_network(self.network, images)
        if self.strength == 1.0:
            return output
        return torch.lerp(images, output.to(images.dtype), self.strength)

    def graphs(self) -> dict[str, tuple[nn.Module, Signature]]:
        return {"": (self.network, Signature())}


@torch.no_grad()
def style_embedding(
    predictor: nn.Module,
    styles: Sequence[Tensor],
    weights: Sequence[float] | None = None,
    size: int | None = 256,
) -> Tensor:
    """S = Σ_i w_i P(style_i) / Σ w (1×E): one style, or a weighted mix of several (the paper's
    convex combination of embeddings). Each style's long side is resized to `size` first."""
    from nst.predictors import resize_for_predictor

    check_style_weights(styles, weights)
    weights = [1.0] * len(styles) if weights is None else [float(w) for w in weights]
    embeddings = [predictor(resize_for_predictor(style, size)) for style in styles]
    return sum(w * e for w, e in zip(weights, embeddings, strict=True)) / sum(weights)


class ArbitraryStylizer(Stylizer):
    """An arbitrary-method style predictor P and conditional network T, set to a style by
    `set_styles` (S_style, computed once). With `strength` w < 1 each image is stylised with
    S = w·S_style + (1 − w)·P(image), the paper's interpolation with the image's own embedding
    (Ghiasi et al. §4, identity interpolation; w = 0 ≈ the photo)."""

    takes_styles = True

    def __init__(
        self,
        predictor: nn.Module,
        transform: ConditionalTransformNet,
        hparams: dict | None = None,
        label: str = "The network",
        strength: float = 1.0,
        preserve_color: str = "none",
        max_memory: int | str | None = None,
        backend: str = "torch",
    ):
        super().__init__(hparams, label, strength, preserve_color, max_memory, backend)
        self.predictor, self.transform = predictor, transform
        self.register_buffer("embedding", None)
        self.predictor_size: int | None = 256

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, label: str, **settings) -> "ArbitraryStylizer":
        """P's VGG is not in the checkpoint: it is rebuilt from the arch and weight source
        training resolved (`hyper_parameters.loss_net`), so these weights must be at hand."""
        from nst.predictors import build_predictor
        from nst.vgg import LossNetwork

        hparams = checkpoint["hyper_parameters"]
        try:
            vgg = hparams["loss_net"]
            loss_network = LossNetwork(vgg["arch"], vgg["weights"], hparams["pooling"])
        except UserError as error:
            raise UserError(
                f"The style predictor of {label} needs the {vgg['weights']} {vgg['arch']} "
                f"weights it was trained with: {error}"
            ) from None
        except (KeyError, TypeError):
            raise UserError(f"{label} lacks the settings of its networks (damaged).") from None
        try:
            predictor = build_predictor(hparams["predictor"], loss_network, pretrained=False)
            transform = ConditionalTransformNet(
                **hparams["network"], embedding_size=hparams["predictor"]["embedding_size"]
            )
            predictor.load_state_dict(module_state(checkpoint, "predictor"))  # without the VGG
            transform.load_state_dict(module_state(checkpoint, "transform"))
        except (RuntimeError, KeyError, TypeError):
            raise UserError(f"{label} {DAMAGED}") from None
        return cls(predictor, transform, hparams, label, **settings)

    def set_styles(
        self,
        styles: Sequence[Tensor],
        weights: Sequence[float] | None = None,
        size: int | None = 256,
    ) -> "ArbitraryStylizer":
        """Stylise with `styles` (mixed by `weights`), each read by P at long side `size`."""
        self.predictor_size = size
        embedding = style_embedding(self.predictor, styles, weights, size)
        self.embedding = embedding.reshape(1, -1)
        return self

    def transfer(self, images: Tensor) -> Tensor:
        from nst.predictors import resize_for_predictor

        if self.embedding is None:
            raise UserError(f"{self.label} stylises with any style image: add style=PATH.")
        embedding = self.embedding.expand(len(images), -1)
        if self.strength < 1.0:
            own = self.predictor(resize_for_predictor(images, self.predictor_size))
            # under autocast the predictor's output is bf16/fp16: blend in float32
            embedding = torch.lerp(own.float(), embedding.float(), self.strength)
        return self.run_network(self.transform, images, embedding)

    def graphs(self) -> dict[str, tuple[nn.Module, Signature]]:
        size = self.transform.style_params.in_features
        return {
            "predictor": (self.predictor, predictor_signature()),
            "transformer": (self.transform, transformer_signature(size)),
        }


KINDS: dict[str, type[Stylizer]] = {"fast": FastStylizer, "arbitrary": ArbitraryStylizer}


def load_stylizer(
    source: str | Path,
    styles: Sequence[Tensor] | None = None,
    style_weights: Sequence[float] | None = None,
    strength: float = 1.0,
    *,
    preserve_color: str = "none",
    style_size: int | None = 256,
    kind: str | None = None,
    max_memory: int | str | None = None,
    backend: str = "torch",
) -> Stylizer:
    """The `Stylizer` of `source` (a zoo model name or a checkpoint path; see `read_source`).

    `styles` (mixed by `style_weights`, read at long side `style_size`) set a network that takes
    any style; `None` leaves it unset (export, `StyleAugment`), an empty list is an error for it.
    A network trained on one style refuses `styles`. `strength` in [0, 1] tones the style down;
    `kind` (a `KINDS` key) refuses checkpoints of other methods. Images whose activations would
    exceed `max_memory` (bytes or "4GiB"; None: `nst.tiling.DEFAULT_MAX_MEMORY`) run tiled;
    whole images run on `backend` (torch | onnxruntime, `nst.backends`).
    """
    checkpoint, label = read_source(source)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    method = hparams.get("name") if isinstance(hparams, dict) else None
    wanted = [kind] if kind else list(KINDS)
    if method not in wanted:
        first, *others = [f"{'an' if k[0] in 'aeiou' else 'a'} {k}-method" for k in wanted]
        raise UserError(
            f"{label} is not {first} checkpoint ({describe(checkpoint)})"
            + "".join(f" nor {other} one" for other in others)
            + f"; pass one written by python train.py method={' or method='.join(wanted)}."
        )
    stylizer_class = KINDS[method]
    if styles and not stylizer_class.takes_styles:
        name = (hparams.get("style") or {}).get("name") or "stylized"
        raise UserError(f"{label} stylises in its own style ({name}); drop style=.")
    if stylizer_class.takes_styles and styles is not None and not styles:
        raise UserError(f"{label} stylises with any style image: add style=PATH.")
    if styles:
        check_style_weights(styles, style_weights)
    stylizer = stylizer_class.from_checkpoint(
        checkpoint,
        label,
        strength=strength,
        preserve_color=preserve_color,
        max_memory=max_memory,
        backend=backend,
    ).eval()
    if styles:
        stylizer.set_styles(styles, style_weights, style_size)
    return stylizer


def batch_stylizer(
    network: nn.Module, device: torch.device, precision: str = "fp32"
) -> Callable[[Tensor], Tensor]:
    """A function stylising N×3×H×W float batches on `device` with `network` (a `Stylizer`, or
    any image-to-image module), output float32 there: the one way images, folders and videos
    run a network. It is moved to `device` channels-last (faster convolutions) once.
    `precision` auto is bf16 for PyTorch on a CPU with native bf16, else fp32."""
    backend = getattr(network, "backend", "torch")
    precision = resolve_precision(precision, device, network=backend == "torch")
    check_backend(backend, device, precision)
    network = network.to(device=device, memory_format=torch.channels_last)
    note_if_emulated(precision, device)  # an unknown precision fails now, before any input

    @torch.inference_mode()
    def stylize(images: Tensor) -> Tensor:
        images = images.to(device, non_blocking=True)
        with autocast(device, precision):
            return network(images.contiguous(memory_format=torch.channels_last)).float()

    return stylize


def stylize_image(
    network: nn.Module,
    image: Tensor,
    size: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> Tensor:
    """Stylise one 1×3×H×W image (long side resized to `size` if given); returns it on CPU."""
    height, width = image.shape[-2:]
    check_whole_image_fits(*(long_side_shape(height, width, size) if size else (height, width)))
    if size is not None:
        image = resize_long_side(image, size)
    check_image_size(image, "The input image")
    return batch_stylizer(network, torch_device(device), precision)(image).cpu()


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
