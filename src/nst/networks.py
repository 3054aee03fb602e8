"""Feed-forward style networks: the Johnson et al. 2016 image transform network.

Layout (Johnson et al. supplementary Table 1): 9×9 conv (32) → two stride-2 3×3 convs (64, 128)
→ five residual blocks (128) → two ×2 upsampling stages (64, 32) → 9×9 conv (3). Every conv but
the last is followed by a normalisation and a ReLU. Three changes to the paper, each standard
since: instance normalisation instead of batch normalisation (Ulyanov et al. 2016), reflection
padding in every conv instead of one 40 px border and unpadded residual convs, and nearest-
neighbour upsampling followed by a conv instead of stride-½ convs (no checkerboard artefacts;
Odena et al. 2016). `norm=batch` and `upsample=transpose` give the paper's choices back.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.errors import UserError

NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "transpose")
MULTIPLE = 4  # two stride-2 convs: sizes divisible by 4 come back exactly


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

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 norm: str = "instance", relu: bool = True):  # fmt: skip
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
            layers = [nn.Upsample(scale_factor=2, mode="nearest"),
                      *ConvLayer(in_channels, out_channels, 3, norm=norm)]  # fmt: skip
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

    def __init__(self, channels: int = 32, residual_blocks: int = 5, norm: str = "instance",
                 upsample: str = "nearest"):  # fmt: skip
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
