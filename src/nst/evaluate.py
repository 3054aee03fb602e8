"""One fixed quality measure for comparing stylised images across methods.

Every quality report uses this evaluator, whatever loss a method optimised: the content distance
at VGG19 relu4_2 and the Gram distance averaged over relu1_1…relu5_1 (Caffe VGG19, max pooling),
both relative squared errors as in `nst.losses`, computed at the output's resolution with the
style image resized to the output's long side; and the luminance SSIM of output and content
(Wang et al. 2004, eq. 13, torchmetrics, 11-px Gaussian window), how much of the photo's
structure survives (1: all of it).
"""

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from nst.image import resize_long_side, rgb_to_yiq
from nst.losses import content_loss, gram_matrix, style_loss
from nst.vgg import LossNetwork

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class StyleEvaluator:
    """Content and style distances and luminance SSIM of a stylised image:
    `evaluator(output, content, style)`."""

    def __init__(self, weights: str = "caffe", device: str | torch.device = "cpu"):
        self.network = LossNetwork("vgg19", weights, pooling="max").to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, output: Tensor, content: Tensor, style: Tensor) -> dict[str, float]:
        """{'content', 'style', 'ssim'} for 1×3×H×W images in [0, 1] (content resized to output)."""
        output = output.to(self.device)
        content = torch.nn.functional.interpolate(
            content.to(self.device), size=output.shape[-2:], mode="bicubic", antialias=True
        ).clamp(0, 1)
        style = resize_long_side(style.to(self.device), max(output.shape[-2:]))
        layers = [CONTENT_LAYER, *STYLE_LAYERS]
        ours, theirs = self.network(output, layers), self.network(style, STYLE_LAYERS)
        target = self.network(content, [CONTENT_LAYER])[CONTENT_LAYER]
        style_distance = sum(
            style_loss(gram_matrix(ours[layer]), gram_matrix(theirs[layer]))
            for layer in STYLE_LAYERS
        ) / len(STYLE_LAYERS)
        luminance = [rgb_to_yiq(image.float())[:, :1] for image in (output, content)]
        ssim = structural_similarity_index_measure(*luminance, data_range=1.0)
        return {
            "content": content_loss(ours[CONTENT_LAYER], target).item(),
            "style": float(style_distance),
            "ssim": float(ssim),
        }
