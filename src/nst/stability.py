"""A flow-free temporal stability loss for feed-forward style networks.

Compound regularisation (Wang et al., AAAI 2020; METHODS.md §6): consecutive video frames differ
by a small motion W and small changes Δ (noise, light), so a network that flickers little should
commute with small warps and ignore small noise:

    L_stab = mean over valid pixels of (T(W(x) + Δ) − W(T(x)))²

with W a random small affine warp (shift, rotation, zoom) and Δ ~ N(0, σ²) per pixel. No warp
(shift = rotation = zoom = 0) gives the noise-stability loss ‖T(x + Δ) − T(x)‖² (Rainy & de
Berker 2018); no noise gives pure warp equivariance. The squared error and the magnitudes are
nst's choices: the paper's exact form is not confirmed (METHODS.md), so they are settings.

`stability_loss` takes the network as a plain function of the image, so a conditional network
(the arbitrary method) passes `lambda images: network(images, style_embedding)`.
"""

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.errors import UserError

VALID = 0.999  # a pixel counts when its warp samples (almost) only from inside the image


def random_affine(
    batch: int,
    shift: float,
    rotation: float,
    zoom: float,
    height: int,
    width: int,
    device: torch.device,
) -> Tensor:
    """N×2×3 `affine_grid` matrices of random small warps, one per image.

    Uniform draws: a shift of up to `shift` px along each axis, a rotation of up to `rotation`
    degrees, a zoom by a factor within 1 ± `zoom`. Shifts are in pixels, so the warp is the same
    motion at any image size; the rotation is about the centre in pixel units (no shearing of
    non-square images).
    """

    def uniform(limit: float) -> Tensor:
        return (torch.rand(batch, device=device) * 2 - 1) * limit

    angle = uniform(math.radians(rotation))
    scale = 1 + uniform(zoom)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    aspect = width / height
    # affine_grid works in [-1, 1] coordinates per axis: scale the off-diagonal terms by the aspect
    # ratio so the rotation is a true rotation in pixels, and shifts of s px become 2s / size.
    theta = torch.stack(
        [
            torch.stack([cos, -sin / aspect, uniform(2 * shift / width)], dim=1),
            torch.stack([sin * aspect, cos, uniform(2 * shift / height)], dim=1),
        ],
        dim=1,
    )
    return theta


def warp(images: Tensor, theta: Tensor, padding: str = "reflection") -> Tensor:
    """Resample N×C×H×W images by the affine matrices `theta` (bilinear)."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def stability_loss(
    transform: Callable[[Tensor], Tensor],
    content: Tensor,
    output: Tensor,
    noise: float,
    shift: float,
    rotation: float,
    zoom: float,
) -> Tensor:
    """Compound regularisation L_stab of `transform` on a batch (Wang et al. 2020, see above).

    `output` is `transform(content)`, already computed for the style loss; one more forward pass
    stylises the warped, noisy content. The squared difference is averaged over the pixels whose
    warp stays inside the image, so the reflected borders do not count.
    """
    batch, _, height, width = content.shape
    theta = random_affine(batch, shift, rotation, zoom, height, width, content.device)
    perturbed = warp(content, theta) + noise * torch.randn_like(content)
    difference = (transform(perturbed) - warp(output, theta)).float().square()
    inside = warp(torch.ones_like(content[:, :1]), theta, padding="zeros") > VALID
    return (difference * inside).sum() / (inside.sum() * content.shape[1]).clamp(min=1)


STABILITY_KNOBS = (
    "stability_weight",
    "stability_noise",
    "stability_shift",
    "stability_rotation",
    "stability_zoom",
)


def check_stability_settings(settings: Mapping) -> None:
    """Each `stability_*` setting of a method config must be zero or positive."""
    for knob in STABILITY_KNOBS:
        if settings[knob] < 0:
            raise UserError(f"method.{knob} must be zero or positive, got {settings[knob]}.")


def add_stability_term(
    terms: dict[str, Tensor],
    transform: Callable[[Tensor], Tensor],
    content: Tensor,
    output: Tensor,
    settings: Mapping,
) -> None:
    """Add λ_stab·L_stab as the term `stability` (and to `total`) when `stability_weight` > 0."""
    if settings["stability_weight"] <= 0:
        return
    loss = stability_loss(
        transform,
        content,
        output,
        settings["stability_noise"],
        settings["stability_shift"],
        settings["stability_rotation"],
        settings["stability_zoom"],
    )
    terms["stability"] = settings["stability_weight"] * loss
    terms["total"] = terms["total"] + terms["stability"]
