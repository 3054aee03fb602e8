"""The improved method (Novak & Nikulin 2016, arXiv 1605.04603): basic's image optimisation with a
richer style and content representation, each improvement a switch in `conf/method/improved.yaml`.

- `geometric_weights` (§3.1): style weights 2^{D−d(l)}, content weights 2^{d(l)}.
- `all_layers` (§3.2): style, and with `all_layers_content` content, on all 16 conv layers of
  VGG19 (relu1_1 … relu5_4; post-ReLU, like the basic method's layers). The paper's content
  layer set is UNCONFIRMED (its content weights 2^{d(l)} imply several), hence the setting.
- `activation_shift` (§3.3): Gram matrices of F + s, s = `method.shift` (paper: −1).
- `correlation_chain` (§3.5): correlations of neighbouring style layers replace the Grams;
  `blur_correlations` adds §3.6's blur (the paper found it slow and unreliable).

With every switch off the loss is exactly the basic method's: improved.yaml takes all other
knobs from basic.yaml. The image optimisation itself (LightningModule, Trainer, scales, colour
preservation) is `nst.methods.basic.optimize_image` with `build=build_improved_loss`.
"""

from omegaconf import DictConfig

from nst.errors import UserError
from nst.losses import ImprovedPerceptualLoss, geometric_layer_weights, layer_weights
from nst.vgg import LossNetwork, layer_names

SWITCHES = (
    "geometric_weights",
    "all_layers",
    "all_layers_content",
    "activation_shift",
    "correlation_chain",
    "blur_correlations",
)
ALL_VGG19_LAYERS = [name for name in layer_names("vgg19") if name.startswith("relu")]


def check_improved_config(method: DictConfig, arch: str) -> None:
    """Raise a `UserError` for switch values the improved method cannot run with."""
    for switch in SWITCHES:
        if not isinstance(method[switch], bool):
            raise UserError(f"method.{switch} must be true or false, got {method[switch]}.")
    if not isinstance(method.shift, (int, float)) or isinstance(method.shift, bool):
        raise UserError(f"method.shift must be a number, got {method.shift}.")
    if method.all_layers and arch != "vgg19":
        raise UserError(
            f"method.all_layers uses the 16 conv layers of VGG19 but the loss network is {arch}; "
            "use loss_net=vgg19 or method.all_layers=false."
        )
    if method.blur_correlations and not method.correlation_chain:
        raise UserError(
            "method.blur_correlations blurs the correlation chain; also set "
            "method.correlation_chain=true."
        )
    if method.geometric_weights and (
        method.style_layer_weights is not None or method.content_layer_weights is not None
    ):
        raise UserError(
            "method.geometric_weights sets the layer weights itself; drop "
            "method.style_layer_weights/content_layer_weights or set geometric_weights=false."
        )


def improved_layers(
    method: DictConfig, loss_network: LossNetwork
) -> tuple[dict[str, float], dict[str, float]]:
    """Content and style layers with their weights: (content, style).

    Geometric weights follow the layers' network order (d(l) = 1 for the shallowest).
    """
    style = ALL_VGG19_LAYERS if method.all_layers else list(method.style_layers)
    use_all_content = method.all_layers and method.all_layers_content
    content = ALL_VGG19_LAYERS if use_all_content else list(method.content_layers)
    loss_network.check_layers([*content, *style])
    if not method.geometric_weights:
        return (
            layer_weights(content, method.content_layer_weights),
            layer_weights(style, method.style_layer_weights),
        )
    content = sorted(set(content), key=loss_network.layer_names.index)
    style = sorted(set(style), key=loss_network.layer_names.index)
    return geometric_layer_weights(content, rising=True), geometric_layer_weights(style, False)


def build_improved_loss(method: DictConfig, loss_network: LossNetwork) -> ImprovedPerceptualLoss:
    """The Novak & Nikulin perceptual loss configured by `method` (its switches)."""
    check_improved_config(method, loss_network.arch)
    content_layers, style_layers = improved_layers(method, loss_network)
    return ImprovedPerceptualLoss(
        loss_network,
        content_layers=content_layers,
        style_layers=style_layers,
        shift=method.shift if method.activation_shift else 0.0,
        correlation_chain=method.correlation_chain,
        upsample=method.chain_upsample,
        blur=method.blur_correlations,
        content_weight=method.content_weight,
        style_weight=method.style_weight,
        tv_weight=method.tv_weight,
    )
