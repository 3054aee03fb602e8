"""One fixed quality measure for comparing stylised images across methods.

Every quality report uses this evaluator, whatever loss a method optimised: the content distance
at VGG19 relu4_2 and the Gram distance averaged over relu1_1…relu5_1 (Caffe VGG19, max pooling),
both relative squared errors as in `nst.losses`, computed at the output's resolution with the
style image resized to the output's long side; and the luminance SSIM of output and content
(Wang et al. 2004, eq. 13, torchmetrics, 11-px Gaussian window), how much of the photo's
structure survives (1: all of it). `StyleEvaluator` scores one image; `StyleDistances` is the
same measure as a torchmetrics `Metric` that averages over many (and over DDP processes).
"""

import torch
from torch import Tensor
from torchmetrics import Metric
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
        scores = distances(self.network, *(x.to(self.device) for x in (output, content, style)))
        return {name: float(value) for name, value in scores.items()}


def distances(network: LossNetwork, output: Tensor, content: Tensor, style: Tensor) -> dict:
    """The evaluator's three numbers as 0-d tensors, for 1×3×H×W images on `network`'s device."""
    content = torch.nn.functional.interpolate(
        content, size=output.shape[-2:], mode="bicubic", antialias=True
    ).clamp(0, 1)
    style = resize_long_side(style, max(output.shape[-2:]))
    ours = network(output, [CONTENT_LAYER, *STYLE_LAYERS])
    theirs = network(style, STYLE_LAYERS)
    target = network(content, [CONTENT_LAYER])[CONTENT_LAYER]
    style_distance = sum(
        style_loss(gram_matrix(ours[layer]), gram_matrix(theirs[layer])) for layer in STYLE_LAYERS
    ) / len(STYLE_LAYERS)
    luminance = [rgb_to_yiq(image.float())[:, :1] for image in (output, content)]
    return {
        "content": content_loss(ours[CONTENT_LAYER], target),
        "style": style_distance,
        "ssim": structural_similarity_index_measure(*luminance, data_range=1.0),
    }


class StyleDistances(Metric):
    """The evaluator as a torchmetrics `Metric`: `update(output, content, style)` per stylised
    image (or a batch of them, one content and style each), `compute()` the means of 'content',
    'style' and 'ssim' over every image so far, summed across DDP processes."""

    full_state_update = False
    higher_is_better = False  # for the distances; SSIM is better higher

    def __init__(
        self, weights: str = "caffe", network: LossNetwork | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        # Several metrics (say, seen and unseen styles) may share one evaluator `network`.
        self.network = network or LossNetwork("vgg19", weights, pooling="max")
        for name in ("content", "style", "ssim"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @torch.no_grad()
    def update(self, output: Tensor, content: Tensor, style: Tensor) -> None:
        for triple in zip(output, content, style, strict=True):
            scores = distances(self.network, *(image[None] for image in triple))
            for name, value in scores.items():
                setattr(self, name, getattr(self, name) + value.double())
            self.count += 1

    def compute(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) / self.count for name in ("content", "style", "ssim")}
