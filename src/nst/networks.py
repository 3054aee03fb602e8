"""Feed-forward style networks: the Johnson et al. 2016 image transform network, and the
Ghiasi et al. 2017 arbitrary-style transform network with conditional instance normalisation.

Layout (Johnson et al. supplementary Table 1): 9×9 conv (32) → two stride-2 3×3 convs (64, 128)
→ five residual blocks (128) → two ×2 upsampling stages (64, 32) → 9×9 conv (3). Every conv but
the last is followed by a normalisation and a ReLU. Three changes to the paper, each standard
since: instance normalisation instead of batch normalisation (Ulyanov et al. 2016), reflection
padding in every conv instead of one 40 px border and unpadded residual convs, and nearest-
neighbour upsampling followed by a conv instead of stride-½ convs (no checkerboard artefacts;
Odena et al. 2016). `norm=batch` and `upsample=transpose` give the paper's choices back.

The conditional network (`ConditionalTransformNet`) keeps this layout and swaps the norm of the
residual and decoder convs for conditional instance normalisation (Dumoulin et al. 2017), whose
γ, β come from a style embedding (the style predictors live in `nst.predictors`).
"""

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.errors import UserError

NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "transpose")
MULTIPLE = 4  # two stride-2 convs: sizes divisible by 4 come back exactly
MIN_SIDE = 8  # px on each side: the smallest image the two stride-2 convs take


def normalization(kind: str, channels: int) -> nn.Module:
    """Instance norm with a learned scale and shift (Ulyanov et al.), or the paper's batch norm.

    Instance norm is computed as a group norm with one group per channel: the same formula,
    y = (x − μ_ti) / √(σ²_ti + ε) per image and channel, with a kernel about 5× faster on CPU than
    `nn.InstanceNorm2d`'s.
    """
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    return nn.BatchNorm2d(channels)


class ConvLayer(nn.Sequential):
    """Reflection-padded conv, then (unless `last`) normalisation and ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        norm: str = "instance",
        relu: bool = True,
    ):
        layers = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(in_channels, out_channels, kernel, stride),
            normalization(norm, out_channels),
        ]
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if relu else []))


class UpsampleConv(nn.Sequential):
    """×2 upsampling: nearest neighbour then a 3×3 conv, or the paper's stride-½ conv."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, upsample: str):
        if upsample == "nearest":
            layers = [
                nn.Upsample(scale_factor=2, mode="nearest"),
                *ConvLayer(in_channels, out_channels, 3, norm=norm),
            ]
        else:
            layers = [
                nn.ConvTranspose2d(in_channels, out_channels, 3, 2, padding=1, output_padding=1),
                normalization(norm, out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """conv3×3-norm-ReLU-conv3×3-norm plus the input, no ReLU after the sum (Gross & Wilber)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm=norm),
            ConvLayer(channels, channels, 3, norm=norm, relu=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class TransformNet(nn.Module):
    """Johnson et al. 2016 image transform network: RGB [0, 1] in, stylised RGB [0, 1] out.

    Any input size works: the image is reflection-padded to a multiple of 4 and the output cropped
    back, so the output has the input's size. The output is the paper's scaled tanh (§3.1) mapped
    to [0, 1], (tanh(x) + 1) / 2, which is the logistic sigmoid of 2x.
    """

    def __init__(
        self,
        channels: int = 32,
        residual_blocks: int = 5,
        norm: str = "instance",
        upsample: str = "nearest",
    ):
        super().__init__()
        if norm not in NORMS:
            raise UserError(f"Unknown network norm '{norm}'; use {' or '.join(NORMS)}.")
        if upsample not in UPSAMPLES:
            raise UserError(f"Unknown network upsample '{upsample}'; use nearest or transpose.")
        wide, widest = 2 * channels, 4 * channels
        self.layers = nn.Sequential(
            ConvLayer(3, channels, 9, norm=norm),
            ConvLayer(channels, wide, 3, stride=2, norm=norm),
            ConvLayer(wide, widest, 3, stride=2, norm=norm),
            *(ResidualBlock(widest, norm) for _ in range(residual_blocks)),
            UpsampleConv(widest, wide, norm, upsample),
            UpsampleConv(wide, channels, norm, upsample),
            nn.ReflectionPad2d(4),
            nn.Conv2d(channels, 3, 9),
        )

    def forward(self, image: Tensor) -> Tensor:
        """Stylise N×3×H×W in [0, 1]; the output has the same shape."""
        height, width = image.shape[-2:]
        pad_bottom, pad_right = -height % MULTIPLE, -width % MULTIPLE
        padded = F.pad(image, (0, pad_right, 0, pad_bottom), mode="reflect")
        output = (torch.tanh(self.layers(padded)) + 1) / 2
        return output[..., :height, :width]


class ConditionalInstanceNorm(nn.Module):
    """Conditional instance normalisation (Dumoulin et al. 2017): z = γ_s (x − μ)/σ + β_s.

    μ, σ are each image's per-channel spatial statistics (ε = 1e-5, as in their code); γ_s, β_s
    (N×C, one row per image of the batch) are given with the input instead of being parameters,
    so every image of a batch can have its own style. With fixed rows this is `normalization`'s
    instance norm with weight γ_s and bias β_s.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.norm = nn.GroupNorm(channels, channels, affine=False)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return torch.addcmul(beta[:, :, None, None], self.norm(x), gamma[:, :, None, None])


class ConditionalConvLayer(nn.Module):
    """(×2 nearest upsampling,) reflection-padded conv, CIN, and (unless `relu=False`) ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        upsample: bool = False,
        relu: bool = True,
    ):
        super().__init__()
        self.upsample, self.relu = upsample, relu
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel)
        self.norm = ConditionalInstanceNorm(out_channels)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(self.conv(self.pad(x)), gamma, beta)
        return F.relu(x) if self.relu else x


class ConditionalResidualBlock(nn.Module):
    """`ResidualBlock` with CIN: conv-CIN-ReLU-conv-CIN plus the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.first = ConditionalConvLayer(channels, channels, 3)
        self.second = ConditionalConvLayer(channels, channels, 3, relu=False)

    def forward(self, x: Tensor, params: Iterator[Tensor]) -> Tensor:
        """`params` yields γ, β of the first conv, then γ, β of the second."""
        hidden = self.first(x, next(params), next(params))
        return x + self.second(hidden, next(params), next(params))


class ConditionalTransformNet(nn.Module):
    """Ghiasi et al. 2017 style transfer network T(c, S): RGB [0, 1] and a style embedding S in,
    stylised RGB [0, 1] out.

    §3 and the authors' code (magenta `nza_model.py`): the Johnson layout with three encoder convs
    under a plain norm (`encoder_norm`, batch norm in the paper), and conditional instance norm
    on the 10 residual convs (128 channels) and the 3 decoder convs (64, 32, 3): 1379 channels,
    2758 γ/β values, predicted from S by one linear map (the paper's per-layer linear maps,
    concatenated). The output is a sigmoid, as in the paper. Any input size works, as with
    `TransformNet`.
    """

    def __init__(
        self,
        channels: int = 32,
        residual_blocks: int = 5,
        embedding_size: int = 100,
        encoder_norm: str = "batch",
    ):
        super().__init__()
        if encoder_norm not in NORMS:
            raise UserError(f"Unknown encoder norm '{encoder_norm}'; use {' or '.join(NORMS)}.")
        wide, widest = 2 * channels, 4 * channels
        self.encoder = nn.Sequential(
            ConvLayer(3, channels, 9, norm=encoder_norm),
            ConvLayer(channels, wide, 3, stride=2, norm=encoder_norm),
            ConvLayer(wide, widest, 3, stride=2, norm=encoder_norm),
        )
        self.residual_blocks = nn.ModuleList(
            ConditionalResidualBlock(widest) for _ in range(residual_blocks)
        )
        self.decoder = nn.ModuleList(
            [
                ConditionalConvLayer(widest, wide, 3, upsample=True),
                ConditionalConvLayer(wide, channels, 3, upsample=True),
                ConditionalConvLayer(channels, 3, 9, relu=False),
            ]
        )
        norms = [module for module in self.modules() if isinstance(module, ConditionalInstanceNorm)]
        # γ then β of each CIN layer in forward order, as one flat vector per image.
        self.param_sizes = [size for norm in norms for size in (norm.channels, norm.channels)]
        self.style_params = nn.Linear(embedding_size, sum(self.param_sizes))
        with torch.no_grad():  # start as plain instance norm: γ = 1, β = 0, small slopes
            self.style_params.weight.normal_(0.0, 0.01)
            gammas = torch.cat(
                [
                    torch.full((size,), float(index % 2 == 0))
                    for index, size in enumerate(self.param_sizes)
                ]
            )
            self.style_params.bias.copy_(gammas)

    @property
    def norm_params(self) -> int:
        """The number of γ/β values the embedding sets (2758 for the paper's network)."""
        return sum(self.param_sizes)

    def forward(self, image: Tensor, embedding: Tensor) -> Tensor:
        """Stylise N×3×H×W in [0, 1] with the N×E style embeddings; same shape out."""
        height, width = image.shape[-2:]
        pad_bottom, pad_right = -height % MULTIPLE, -width % MULTIPLE
        x = F.pad(image, (0, pad_right, 0, pad_bottom), mode="reflect")
        params = iter(self.style_params(embedding).split(self.param_sizes, dim=1))
        x = self.encoder(x)
        for block in self.residual_blocks:
            x = block(x, params)
        for layer in self.decoder:
            x = layer(x, next(params), next(params))
        return torch.sigmoid(x)[..., :height, :width]


def conditional_from_transform_net(
    network: ConditionalTransformNet, state: dict[str, Tensor]
) -> ConditionalTransformNet:
    """Start a `ConditionalTransformNet` from a trained `TransformNet`'s `state_dict` (a fast
    model of the same width and depth, nearest upsampling): every convolution and the encoder
    norms copied, and the fast model's instance-norm γ, β as the bias of `style_params`, so that
    before training T(c, S) is that model whatever S (its last layer's CIN aside). A warm start
    for the arbitrary method (the issue's "convolutions from a zoo fast model")."""
    blocks = len(network.residual_blocks)
    copied = {}
    for index in range(3):
        for part in (1, 2):
            for name in ("weight", "bias"):
                copied[f"encoder.{index}.{part}.{name}"] = state[f"layers.{index}.{part}.{name}"]
    norms = []
    for block in range(blocks):
        for half, place in ((0, "first"), (1, "second")):
            prefix = f"layers.{3 + block}.body.{half}"
            copied[f"residual_blocks.{block}.{place}.conv.weight"] = state[f"{prefix}.1.weight"]
            copied[f"residual_blocks.{block}.{place}.conv.bias"] = state[f"{prefix}.1.bias"]
            norms += [state[f"{prefix}.2.weight"], state[f"{prefix}.2.bias"]]
    for index in range(2):
        prefix = f"layers.{3 + blocks + index}"
        copied[f"decoder.{index}.conv.weight"] = state[f"{prefix}.2.weight"]
        copied[f"decoder.{index}.conv.bias"] = state[f"{prefix}.2.bias"]
        norms += [state[f"{prefix}.3.weight"], state[f"{prefix}.3.bias"]]
    last = f"layers.{3 + blocks + 3}"
    copied["decoder.2.conv.weight"] = state[f"{last}.weight"]
    copied["decoder.2.conv.bias"] = state[f"{last}.bias"]
    bias = network.style_params.bias.detach().clone()
    bias[: sum(len(value) for value in norms)] = torch.cat(norms)
    copied["style_params.bias"] = bias
    network.load_state_dict(copied, strict=False)
    return network
