"""Style prediction networks P: a style image → a style embedding S (Ghiasi et al. 2017, §3).

The paper's P is Inception-v3 up to Mixed_6e, a spatial mean of its 768 channels and a linear map
to a 100-d bottleneck S, trained jointly from ImageNet weights. Those weights cannot be had
offline, so nst's default predictor reads the frozen VGG loss network instead: the channel means
and standard deviations of a few of its layers (the statistics AdaIN, Huang & Belongie 2017,
shows to carry a style), log-compressed, then a small MLP to S. It shares the loss network's VGG,
which therefore never enters a checkpoint. `InceptionPredictor` is the paper's P for machines
that can download torchvision's Inception-v3 weights.
"""

import socket
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from nst.errors import UserError
from nst.image import resize_long_side
from nst.vgg import BLOCK_CHANNELS, DOWNLOAD_TIMEOUT_S, LossNetwork

BACKBONES = ("vgg", "inception_v3")
INCEPTION_LAYERS = (
    *("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1"),
    *("Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a"),
    *("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"),
)
INCEPTION_CHANNELS = 768


def channel_statistics(features: Tensor) -> Tensor:
    """log(1 + mean) and log(1 + std) of every channel: N×C×H×W → N×2C.

    The log keeps deep layers (activations in the hundreds with Caffe weights) from swamping
    shallow ones, and makes the statistics of any VGG weight source a similar scale.
    """
    flat = features.float().flatten(2)
    mean = flat.mean(dim=2)
    std = (flat - mean[..., None]).square().mean(dim=2).sqrt()  # std_mean has no ONNX export
    return torch.cat([mean.clamp_min(0).log1p(), std.log1p()], dim=1)


class RunningStandardize(nn.Module):
    """(x − μ) / σ per feature, μ and σ² the average over every batch seen in training (Chan et
    al.'s pairwise update), never the batch's own: a style's embedding does not depend on the
    other images of its batch, and after training the statistics stay fixed (in the state dict).

    The VGG statistics of all paintings share a large common part; unstandardised, every Adam
    step of P's first linear map moves all embeddings together and the styles never separate.
    """

    def __init__(self, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("var", torch.ones(features))
        self.register_buffer("count", torch.zeros(()))  # a float, as every zoo tensor is

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold the rows of `x` (N×F) into the running mean and variance."""
        seen, new = self.count.item(), float(len(x))
        total = seen + new
        mean, var = x.mean(0), x.var(0, unbiased=False)
        delta = mean - self.mean
        self.var.copy_((self.var * seen + var * new + delta.square() * seen * new / total) / total)
        self.mean.add_(delta * new / total)
        self.count.add_(new)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.update(x)
        return (x - self.mean) / (self.var + self.eps).sqrt()


class VGGPredictor(nn.Module):
    """P on the frozen VGG: channel statistics of `layers` → (standardised, `standardize`) → MLP
    (`hidden` units) → S.

    `hidden=0` gives the paper's single linear map from pooled features to the bottleneck.
    """

    def __init__(
        self,
        loss_network: LossNetwork,
        layers: Sequence[str],
        embedding_size: int = 100,
        hidden: int = 512,
        standardize: bool = False,
    ):
        super().__init__()
        loss_network.check_layers(layers)
        self.loss_network, self.layers = loss_network, list(layers)
        statistics = 2 * sum(layer_channels(layer) for layer in self.layers)
        self.standardize = RunningStandardize(statistics) if standardize else nn.Identity()
        self.head = (
            nn.Sequential(
                nn.Linear(statistics, hidden), nn.ReLU(), nn.Linear(hidden, embedding_size)
            )
            if hidden
            else nn.Linear(statistics, embedding_size)
        )

    def from_features(self, features: Mapping[str, Tensor]) -> Tensor:
        """S from VGG activations that include `layers` (so the loss can share one VGG pass)."""
        statistics = [channel_statistics(features[layer]) for layer in self.layers]
        return self.head(self.standardize(torch.cat(statistics, 1)))

    def forward(self, image: Tensor) -> Tensor:
        """S (N×E) of N×3×H×W style images in [0, 1]."""
        with torch.no_grad():
            features = self.loss_network(image, self.layers)
        return self.from_features(features)


def layer_channels(layer: str) -> int:
    """Channels of a VGG layer (`conv3_2`, `relu3_2`, `pool3`: the block number is character 4)."""
    return BLOCK_CHANNELS[int(layer[4]) - 1]


class InceptionPredictor(nn.Module):
    """The paper's P: Inception-v3 up to Mixed_6e → spatial mean (768) → linear → S.

    Trained jointly with the transfer network (§3). `pretrained` starts from torchvision's
    ImageNet weights (downloaded once into the torch hub cache); a checkpoint holds the trained
    weights, so stylising needs no download.
    """

    def __init__(self, embedding_size: int = 100, pretrained: bool = True):
        super().__init__()
        from torchvision.models import inception_v3

        network = inception_v3(weights=None, aux_logits=False, init_weights=False)
        if pretrained:
            network.load_state_dict(inception_weights(), strict=False)
        self.features = nn.Sequential(*(getattr(network, name) for name in INCEPTION_LAYERS))
        self.bottleneck = nn.Linear(INCEPTION_CHANNELS, embedding_size)

    def forward(self, image: Tensor) -> Tensor:
        """S (N×E) of N×3×H×W style images in [0, 1] (Inception reads [−1, 1])."""
        return self.bottleneck(self.features(image * 2 - 1).mean(dim=(2, 3)))


def inception_weights() -> dict[str, Tensor]:
    """torchvision's ImageNet Inception-v3 weights (hub cache or download), or a UserError."""
    from torchvision.models import Inception_V3_Weights

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return Inception_V3_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as error:
        reason = getattr(error, "reason", error)
        raise UserError(
            f"torchvision's Inception-v3 weights are not cached and cannot be downloaded "
            f"({reason}); use method.predictor.backbone=vgg (offline)."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def build_predictor(predictor: Mapping, loss_network: LossNetwork, pretrained: bool = True):
    """The predictor `predictor` (a `method.predictor` config) describes."""
    backbone = predictor["backbone"]
    if backbone == "vgg":
        return VGGPredictor(
            loss_network,
            predictor["layers"],
            predictor["embedding_size"],
            predictor["hidden"],
            predictor.get("standardize", False),  # models trained before it existed: off
        )
    if backbone == "inception_v3":
        return InceptionPredictor(
            predictor["embedding_size"], pretrained and predictor["pretrained"]
        )
    raise UserError(f"Unknown predictor backbone '{backbone}'; use {' or '.join(BACKBONES)}.")


def resize_for_predictor(image: Tensor, size: int | None) -> Tensor:
    """`image` with its long side at `size` px (the scale P was trained at), if `size` is set."""
    return image if size is None else resize_long_side(image, size, mode="bilinear")
