"""Perceptual losses on the VGG loss network: content, Gram style, total variation, and Novak &
Nikulin's improved style representations (geometric weights, shifted Grams, correlation chain).

Conventions (Gatys et al. 2016, "Image Style Transfer Using CNNs"): F^l is N_l × M_l, N_l filters
by M_l = H·W positions. Content and style terms are relative squared errors (divided by the
target's energy), so their weights do not depend on image size or on the VGG weights' scale.
"""

from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.errors import UserError
from nst.vgg import LossNetwork

EPSILON = 1e-8


def gram_matrix(features: Tensor, shift: float = 0.0) -> Tensor:
    """Gram matrices G = F Fᵀ / M of a batch of feature maps (B×N×H×W → B×N×N).

    Gatys eq. 3 normalised by M = H·W as in the authors' code. With `shift` s this is Novak &
    Nikulin's activation shift (§3.3), G = (F + s)(F + s)ᵀ / M.
    """
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    if shift:
        flat = flat + shift
    return UnnormalisedGram.apply(flat) / (height * width)


class UnnormalisedGram(torch.autograd.Function):
    """F Fᵀ with the gradient (D + Dᵀ) F in one matmul, laid out like F.

    Autograd's own `bmm(F, F.mT)` backward takes two matmuls and sums both full-size results.
    The basic method's five Gram matrices at 512×341, forward and backward, went from 574 to
    239 ms on one core; `benchmarks/basic_speed.py` went from 1.48 to 1.62 bf16 iterations/s.
    """

    @staticmethod
    def forward(ctx, flat: Tensor) -> Tensor:
        ctx.save_for_backward(flat)
        return torch.bmm(flat, flat.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (flat,) = ctx.saved_tensors
        # Under autocast the product (and so `grad`) may be bf16 while `flat` is not.
        return matmul_like((grad + grad.transpose(1, 2)).to(flat.dtype), flat, flat)


class FeatureProduct(torch.autograd.Function):
    """X Yᵀ of two flattened feature maps, with each gradient laid out like its input.

    Autograd's `bmm` backward returns contiguous N×M gradients; VGG's maps are channels_last
    views (M×N in memory), so every gradient was copied once more before the convolutions'
    backward could use it.
    """

    @staticmethod
    def forward(ctx, shallow: Tensor, deep: Tensor) -> Tensor:
        ctx.save_for_backward(shallow, deep)
        return torch.bmm(shallow, deep.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        shallow, deep = ctx.saved_tensors
        grad = grad.to(shallow.dtype)
        return matmul_like(grad, deep, shallow), matmul_like(grad.transpose(1, 2), shallow, deep)


def matmul_like(left: Tensor, right: Tensor, like: Tensor) -> Tensor:
    """The batched product left @ right in the memory layout of `like` (same shape).

    A flattened channels_last map (B×N×M with the N channels adjacent in memory) gets its
    product as (rightᵀ leftᵀ)ᵀ, which BLAS writes in that layout directly.
    """
    if like.stride(-2) == 1 and like.stride(-1) != 1:
        return torch.bmm(right.transpose(1, 2), left.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(left, right)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Gatys eq. 1, ½ Σ (F − P)², relative to the target's energy: Σ (F − P)² / Σ P².

    For a fixed target the divisor is a constant per layer, so this is eq. 1 with a layer weight;
    it makes loss weights independent of image size and of the loss network's activation scale
    (Caffe weights see 0-255 pixels, torchvision weights standardised ones).
    """
    return relative_squared_error(features, target)


def style_loss(gram: Tensor, target: Tensor) -> Tensor:
    """Gatys eq. 4, E = 1/(4 N² M²) Σ (G − A)², relative to the target's energy: Σ (G − A)² / Σ A².

    The same per-layer constant as `content_loss` replaces 1/(4 N² M²): E_l up to a layer weight.
    `target` broadcasts over the batch (one style for all) or matches it (one style each).
    """
    return relative_squared_error(gram, target)


def relative_squared_error(value: Tensor, target: Tensor) -> Tensor:
    """Σ (X − T)² / Σ T² (T broadcast to X's shape): one fused pass for each of the two sums."""
    energy = torch.linalg.vector_norm(target).square() / target.numel()
    return MeanSquaredError.apply(value, target.expand_as(value)) / (energy + EPSILON)


class MeanSquaredError(torch.autograd.Function):
    """`F.mse_loss(value, target)` with the gradient 2 (X − T) / n written in X's memory layout.

    `F.mse_loss`'s own backward took 2.3× as long on channels_last VGG maps (115 against 51 ms
    forward and backward for relu1_2 at 512×341, one core).
    """

    @staticmethod
    def forward(ctx, value: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(value, target)
        return F.mse_loss(value, target)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        value, target = ctx.saved_tensors
        # Recomputed rather than saved: one more map per content layer would cost memory.
        difference = (value - target).mul_(grad * (2 / value.numel()))
        grad_target = -difference if ctx.needs_input_grad[1] else None
        return difference, grad_target


def total_variation(image: Tensor) -> Tensor:
    """Squared-gradient total variation (β = 2, as Johnson et al. use): mean Δx² + mean Δy²."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def layer_weights(layers: Sequence[str], weights: Sequence[float] | None) -> dict[str, float]:
    """Pair layers with weights; no weights means 1/len(layers) each (Gatys: w_l = 1/5)."""
    layers = list(layers)
    if not layers:
        raise UserError("At least one layer is needed for each of the content and style losses.")
    if weights is None:
        return {layer: 1.0 / len(layers) for layer in layers}
    weights = list(weights)
    if len(weights) != len(layers):
        raise UserError(
            f"{len(layers)} layers but {len(weights)} layer weights were given; "
            "give one weight per layer or none."
        )
    if any(weight < 0 for weight in weights):
        raise UserError("Layer weights must be non-negative.")
    return dict(zip(layers, (float(weight) for weight in weights), strict=True))


class PerceptualLoss(nn.Module):
    """α·content + β·style + γ·TV (Gatys eq. 7 plus a TV prior), returned as named terms.

    Targets are encoded once (`set_content`, `set_style`) and kept as non-persistent buffers, so
    they follow the module across devices and stay out of checkpoints. `forward` returns the
    weighted terms `content`, `style`, `tv` and their sum `total`.
    """

    def __init__(
        self,
        loss_network: LossNetwork,
        content_layers: Mapping[str, float],
        style_layers: Mapping[str, float],
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
    ):
        super().__init__()
        loss_network.check_layers([*content_layers, *style_layers])
        self.loss_network = loss_network
        self.content_layers = dict(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight

    @property
    def layers(self) -> set[str]:
        """Every layer the loss reads."""
        return set(self.content_layers) | set(self.style_layers)

    def style_representation(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The matrices the style loss compares: one Gram matrix per style layer."""
        return {layer: gram_matrix(features[layer]) for layer in self.style_layers}

    def _store(self, prefix: str, targets: Mapping[str, Tensor]) -> None:
        for key, value in targets.items():
            self.register_buffer(f"{prefix}_{key}", value.detach(), persistent=False)

    def _stored(self, prefix: str, keys) -> dict[str, Tensor]:
        return {key: getattr(self, f"{prefix}_{key}") for key in keys}

    @torch.no_grad()
    def encode_content(self, image: Tensor) -> dict[str, Tensor]:
        """Content targets P^l of `image` (no gradient)."""
        return self.loss_network(image, self.content_layers)

    @torch.no_grad()
    def encode_style(self, image: Tensor) -> dict[str, Tensor]:
        """Style targets A^l of `image` (no gradient), one per batch element."""
        return self.style_representation(self.loss_network(image, self.style_layers))

    def set_content(self, image: Tensor) -> None:
        """Encode and keep the content targets of one image."""
        self._store("content", self.encode_content(image))

    def set_style(self, images: Sequence[Tensor], blend: Sequence[float] | None = None) -> None:
        """Encode and keep the style targets of one or more images (each at its own size).

        Several styles blend as the weighted mean of their targets: for weights summing to one,
        Σ_s b_s‖G − A_s‖² = ‖G − Σ_s b_s A_s‖² + const, so the gradient is the same.
        """
        blend = [1.0] * len(images) if blend is None else list(blend)
        shares = [weight / sum(blend) for weight in blend]
        targets = [self.encode_style(image) for image in images]
        blended = {
            key: sum(share * target[key] for share, target in zip(shares, targets, strict=True))
            for key in targets[0]
        }
        self._store("style", blended)

    def forward(
        self,
        image: Tensor,
        content: Tensor | None = None,
        style: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Weighted loss terms of `image`; a `content` batch replaces the stored content targets,
        and `style` (an `encode_style` result, one style per image) the stored style targets."""
        features = self.loss_network(image, self.layers)
        if content is None:
            content_targets = self._stored("content", self.content_layers)
        else:
            content_targets = self.encode_content(content)
        content_term = sum(
            weight * content_loss(features[layer], content_targets[layer])
            for layer, weight in self.content_layers.items()
        )
        representation = self.style_representation(features)
        style_targets = self._stored("style", representation) if style is None else style
        style_term = sum(
            self.style_layer_weight(key) * style_loss(matrix, style_targets[key])
            for key, matrix in representation.items()
        )
        terms = {
            "content": self.content_weight * content_term,
            "style": self.style_weight * style_term,
            "tv": self.tv_weight * total_variation(image),
        }
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

    def style_layer_weight(self, key: str) -> float:
        """Weight of one style representation entry (here: the style layer's weight)."""
        return self.style_layers[key]


# Novak & Nikulin 2016, "Improving the Neural Algorithm of Artistic Style" (arXiv 1605.04603).

UPSAMPLE_MODES = ("nearest", "bilinear")
BINOMIAL_3 = (0.25, 0.5, 0.25)


def geometric_layer_weights(layers: Sequence[str], rising: bool) -> dict[str, float]:
    """Novak & Nikulin §3.1: style w_l = 2^{D−d(l)} (`rising=False`), content w_l = 2^{d(l)}.

    `layers` come in network order; d(l) = 1…D is a layer's position among them and D their
    number. The weights are divided by their sum (a constant factor), so `style_weight` and
    `content_weight` mean what they do in the basic method, whose w_l = 1/5 also sum to one.
    """
    count = len(layers)
    powers = [index if rising else count - index for index in range(1, count + 1)]
    total = sum(2.0**power for power in powers)
    return {layer: 2.0**power / total for layer, power in zip(layers, powers, strict=True)}


def binomial_blur(features: Tensor) -> Tensor:
    """Blur every channel once with the 3×3 binomial kernel [1 2 1]ᵀ[1 2 1] / 16.

    The blur of Novak & Nikulin §3.6; the paper's kernel is UNCONFIRMED. Reflect padding keeps
    the size, and the kernel sums to one, so constants (the activation shift) pass unchanged.
    """
    channels = features.shape[1]
    taps = torch.tensor(BINOMIAL_3, dtype=features.dtype, device=features.device)
    kernel = (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3)
    padded = F.pad(features, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel, groups=channels)


def pooling_factor(large: int, small: int) -> int:
    """By how much VGG's 2×2 poolings (floor rounding) shrank a side of `large` to `small` px."""
    return 1 << ((large // small).bit_length() - 1)


def upsample_nearest(deep: Tensor, size: tuple[int, int]) -> Tensor:
    """The deeper map at the shallower map's `size`, aligned with the pooling between them.

    Each deep position is repeated over the block of positions it was pooled from; a last row
    or column that floor-rounding pooling dropped (odd sizes) repeats its neighbour. (Interpolation
    to an odd size would shift positions by up to one against the pooling windows.)
    """
    return UpsampleNearest.apply(deep, tuple(size))


def block_sums(shallow: Tensor, size: tuple[int, int]) -> Tensor:
    """The adjoint of `upsample_nearest`: per deep position, the sum of the shallow positions it
    is repeated over, so that F^l upsample_nearest(F^k)ᵀ = block_sums(F^l) F^kᵀ."""
    return BlockSums.apply(shallow, tuple(size))


class UpsampleNearest(torch.autograd.Function):
    """`upsample_nearest`, with `block_sums` (its adjoint) as the backward (and the other way
    round in `BlockSums`, so second derivatives exist too)."""

    @staticmethod
    def forward(ctx, deep: Tensor, size: tuple[int, int]) -> Tensor:
        ctx.deep_size = tuple(deep.shape[-2:])
        return repeat_blocks(deep, size)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return block_sums(grad, ctx.deep_size), None


class BlockSums(torch.autograd.Function):
    """`block_sums`, with `upsample_nearest` (its adjoint) as the backward.

    Autograd's `avg_pool2d` backward on channels_last maps took 4× as long (212 against 48 ms
    forward and backward for relu1_2 at 512×341, one core).
    """

    @staticmethod
    def forward(ctx, shallow: Tensor, size: tuple[int, int]) -> Tensor:
        ctx.shallow_size = tuple(shallow.shape[-2:])
        return add_blocks(shallow, size)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return upsample_nearest(grad, ctx.shallow_size), None


def repeat_blocks(deep: Tensor, size: tuple[int, int]) -> Tensor:
    """`upsample_nearest` without autograd, in `deep`'s memory layout.

    The repeated blocks are written straight into the output, and only the rows and columns
    past them are copied: `F.interpolate` then `F.pad(mode="replicate")` took twice as long
    on relu1_2's gradient at 512×341 (one more pass over the full map).
    """
    factors = pooling_factor(size[0], deep.shape[-2]), pooling_factor(size[1], deep.shape[-1])
    height, width = deep.shape[-2] * factors[0], deep.shape[-1] * factors[1]
    out = torch.empty(
        (*deep.shape[:-2], *size),
        dtype=deep.dtype,
        device=deep.device,
        memory_format=memory_layout(deep),
    )
    torch.ops.aten.upsample_nearest2d.out(
        deep, [height, width], None, None, out=out[..., :height, :width]
    )
    if size[0] > height:
        out[..., height:, :width] = out[..., height - 1 : height, :width]
    if size[1] > width:
        out[..., width:] = out[..., width - 1 : width]
    return out


def add_blocks(shallow: Tensor, size: tuple[int, int]) -> Tensor:
    """`block_sums` without autograd, in `shallow`'s memory layout."""
    factors = (
        pooling_factor(shallow.shape[-2], size[0]),
        pooling_factor(shallow.shape[-1], size[1]),
    )
    sums = F.avg_pool2d(shallow, factors, ceil_mode=True, divisor_override=1)
    sums = fold_excess(fold_excess(sums, size[0], -2), size[1], -1)
    # Folding (odd sizes) loses channels_last, and the gradients would follow it.
    return sums.contiguous(memory_format=memory_layout(shallow))


def memory_layout(features: Tensor) -> torch.memory_format:
    """channels_last for NHWC maps (VGG's), else the default layout."""
    if features.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def fold_excess(sums: Tensor, length: int, dim: int) -> Tensor:
    """Add the entries past `length` along `dim` (a partial pooling window) into the last one."""
    if sums.shape[dim] == length:
        return sums
    excess = sums.narrow(dim, length - 1, sums.shape[dim] - length + 1).sum(dim, keepdim=True)
    return torch.cat([sums.narrow(dim, 0, length - 1), excess], dim)


def cross_layer_correlation(
    shallow: Tensor, deep: Tensor, upsample: str = "nearest", blur_steps: int = 0
) -> Tensor:
    """Novak & Nikulin §3.4: G^{lk} = F^l [up(F^k)]ᵀ / M_l, a K_l × K_k matrix per batch element.

    `shallow` is F^l (B×K_l×X_l×Y_l), `deep` is F^k with X_k ≤ X_l, both already shifted by s
    (§3.3; the loss shifts each map once for both of its links). The deeper map is upsampled to
    the shallower map's size (×2 across a pooling boundary; `upsample` UNCONFIRMED: `nearest`,
    aligned with the pooling, or `bilinear`) and blurred `blur_steps` times (§3.6). The
    normaliser is 1/M_l like `gram_matrix`'s; the paper's per-link constant (UNCONFIRMED)
    cancels in the relative `style_loss`. Nearest without blur takes the cheaper, equal route
    through `block_sums`: a quarter of the work per pooling, and no upsampled map.
    """
    height, width = shallow.shape[-2:]
    resize = deep.shape[-2:] != shallow.shape[-2:]
    if resize and upsample == "nearest" and not blur_steps:
        shallow = block_sums(shallow, deep.shape[-2:])
    elif resize:
        upsampled = upsample_nearest if upsample == "nearest" else bilinear
        deep = upsampled(deep, (height, width))
    for _ in range(blur_steps):
        deep = binomial_blur(deep)
    return FeatureProduct.apply(shallow.flatten(2), deep.flatten(2)) / (height * width)


def bilinear(deep: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling to `size` (half-pixel centres, as `F.interpolate` does)."""
    return F.interpolate(deep, size=size, mode="bilinear")


def chain_link_weights(style_layers: Mapping[str, float]) -> dict[tuple[str, str], float]:
    """Weights of the correlation chain's links (l−1, l): link l takes layer l's weight.

    Novak & Nikulin §3.5 weigh G^{l,l−1} (l = 2…D) with 2^{D−d(l)}, the weight of its deeper
    layer l. The link weights are rescaled to the layer weights' sum, so `style_weight` keeps its
    meaning. `style_layers` come in network order.
    """
    layers = list(style_layers)
    links = list(pairwise(layers))
    deeper_total = sum(style_layers[deep] for _, deep in links)
    scale = sum(style_layers.values()) / deeper_total if deeper_total > 0 else 0.0
    return {(shallow, deep): style_layers[deep] * scale for shallow, deep in links}


class ImprovedPerceptualLoss(PerceptualLoss):
    """`PerceptualLoss` with Novak & Nikulin's style representations.

    - `shift` s: Gram matrices of shifted activations, G = (F + s)(F + s)ᵀ (§3.3; paper: s = −1).
    - `correlation_chain`: the per-layer Grams are replaced by the cross-layer correlations of
      neighbouring style layers {G^{l,l−1}} (§3.5), each shifted by s on both factors, weighted
      by `chain_link_weights`; `blur` blurs the upsampled deeper map once per conv layer
      between the two (§3.6, blur^{l−k}).

    Layer choice and geometric weights (§3.1, §3.2) come in through `content_layers` and
    `style_layers`. With `shift=0` and no chain this is exactly `PerceptualLoss`.
    """

    def __init__(
        self,
        loss_network: LossNetwork,
        content_layers: Mapping[str, float],
        style_layers: Mapping[str, float],
        shift: float = 0.0,
        correlation_chain: bool = False,
        upsample: str = "nearest",
        blur: bool = False,
        **weights: float,
    ):
        order = loss_network.layer_names.index
        loss_network.check_layers(style_layers)
        style_layers = {layer: style_layers[layer] for layer in sorted(style_layers, key=order)}
        super().__init__(loss_network, content_layers, style_layers, **weights)
        if upsample not in UPSAMPLE_MODES:
            raise UserError(f"Unknown upsampling '{upsample}'; use nearest or bilinear.")
        if correlation_chain and len(style_layers) < 2:
            raise UserError("The correlation chain needs at least two style layers.")
        self.shift = float(shift)
        self.upsample = upsample
        self.links = chain_link_weights(style_layers) if correlation_chain else {}
        depth = {layer: conv_depth(loss_network, layer) for layer in style_layers}
        self.blur_steps = {
            (shallow, deep): depth[deep] - depth[shallow] if blur else 0
            for shallow, deep in self.links
        }

    def style_representation(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Shifted Gram matrices per style layer, or the chain's correlations per link."""
        if not self.links:
            return {layer: gram_matrix(features[layer], self.shift) for layer in self.style_layers}
        shifted = {
            layer: features[layer] + self.shift if self.shift else features[layer]
            for layer in self.style_layers
        }
        return {
            link_key(shallow, deep): cross_layer_correlation(
                shifted[shallow], shifted[deep], self.upsample, self.blur_steps[shallow, deep]
            )
            for shallow, deep in self.links
        }

    def style_layer_weight(self, key: str) -> float:
        """Weight of a style layer, or of a chain link keyed `shallow-deep`."""
        if not self.links:
            return self.style_layers[key]
        shallow, deep = key.split("-")
        return self.links[shallow, deep]


def link_key(shallow: str, deep: str) -> str:
    """Name of a correlation-chain link, e.g. `relu1_2-relu2_1` (a valid buffer name)."""
    return f"{shallow}-{deep}"


def conv_depth(loss_network: LossNetwork, layer: str) -> int:
    """How many conv layers of `loss_network` come up to and including `layer` (conv1_1 → 1)."""
    names = loss_network.layer_names
    return sum(name.startswith("conv") for name in names[: names.index(layer) + 1])


def build_loss(method: Mapping, loss_network: LossNetwork) -> PerceptualLoss:
    """The perceptual loss a method's settings describe (layers, their weights, λ_c, λ_s, λ_TV):
    Gatys et al.'s for basic, Johnson et al.'s for fast and Ghiasi et al.'s for arbitrary."""
    return PerceptualLoss(
        loss_network,
        content_layers=layer_weights(method["content_layers"], method["content_layer_weights"]),
        style_layers=layer_weights(method["style_layers"], method["style_layer_weights"]),
        content_weight=method["content_weight"],
        style_weight=method["style_weight"],
        tv_weight=method["tv_weight"],
    )
