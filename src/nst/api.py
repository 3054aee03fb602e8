"""Python API: `nst.stylize(content, style, method="basic", **options)` returns a PIL image;
`nst.stylize(content, ckpt=PATH)` stylises with a network trained by train.py.

Options are the same names as on the command line (`conf/stylize.yaml` and `conf/method/*`),
composed by Hydra, so the defaults have one home: the YAML files.
"""

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict
from PIL import Image
from torch import Tensor

from nst.commands.hydra_cli import config_dir
from nst.errors import UserError
from nst.image import from_pil, load_image, to_pil

ImageLike = str | Path | Image.Image | Tensor


def compose_config(name: str = "stylize", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose a config from `conf/` the way the command line does, with Hydra overrides."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def as_tensor(image: ImageLike) -> Tensor:
    """A path, `sample:NAME`, PIL image or tensor as a 1×3×H×W float tensor in [0, 1]."""
    if isinstance(image, Image.Image):
        return from_pil(image)
    if isinstance(image, Tensor):
        return (image if image.dim() == 4 else image.unsqueeze(0)).float()
    return load_image(image)


def method_config(cfg: DictConfig) -> DictConfig:
    """The method section as the optimiser reads it: a copy with the top-level `size` (when
    given) and `preserve_color`, which live only at the top level, filled in."""
    method = cfg.method.copy()
    with open_dict(method):
        if cfg.size is not None:
            method.size = cfg.size
        method.preserve_color = cfg.preserve_color
    return method


def configured_stylizer(cfg: DictConfig, source: str | Path, styles: list[Tensor] | None):
    """The trained network `source` with the command line's style, strength, colour and memory
    settings (`nst.inference.load_stylizer`)."""
    from nst.inference import load_stylizer

    return load_stylizer(
        source,
        styles,
        cfg.style_weights,
        cfg.strength,
        preserve_color=cfg.preserve_color,
        style_size=cfg.style_size,
        max_memory=cfg.max_memory,
        backend=cfg.backend,
    )


def stylizer_source(cfg: DictConfig) -> str | Path | None:
    """The trained network `ckpt=PATH` or `model=NAME` names, or None when neither is given."""
    if cfg.ckpt is not None and cfg.model is not None:
        raise UserError("Pass ckpt=PATH or model=NAME, not both.")
    if cfg.ckpt is not None:
        return Path(cfg.ckpt)
    return None if cfg.model is None else str(cfg.model)


def run(cfg: DictConfig, content: Tensor, styles: list[Tensor], **kwargs) -> Tensor:
    """Stylise one content image as a composed `stylize` config says; returns 1×3×H×W."""
    from nst.losses import build_loss
    from nst.methods.basic import optimize_image
    from nst.methods.improved import build_improved_loss

    source = stylizer_source(cfg)
    if source is not None:
        from nst.inference import stylize_image

        stylizer = configured_stylizer(cfg, source, styles)
        return stylize_image(stylizer, content, cfg.size, cfg.device, cfg.precision)
    if cfg.method.name in ("basic", "improved"):
        if not styles:
            raise UserError(f"method={cfg.method.name} needs a style image: add style=PATH.")
        build = build_improved_loss if cfg.method.name == "improved" else build_loss
        return optimize_image(
            content,
            styles,
            method_config(cfg),
            cfg.loss_net,
            style_weights=cfg.style_weights,
            device=cfg.device,
            seed=cfg.seed,
            build=build,
            precision=cfg.precision,
            **kwargs,
        )
    if cfg.method.name == "fast":
        raise UserError(
            "method=fast stylises with a trained network: pass ckpt=PATH (train one with "
            "python train.py method=fast style=wave)."
        )
    raise UserError(f"Unknown method '{cfg.method.name}'.")


def apply_options(cfg: DictConfig, options: dict) -> None:
    """Set keyword options on the config: top-level keys first, then `method.*`, `loss_net.*`."""
    for key, value in options.items():
        if isinstance(value, tuple):
            value = list(value)
        if key in cfg and key not in ("method", "loss_net"):
            cfg[key] = value
        elif key in cfg.method:
            cfg.method[key] = value
        elif key == "loss_net":
            cfg.loss_net = OmegaConf.merge(cfg.loss_net, value)
        else:
            raise UserError(f"Unknown option '{key}' for method={cfg.method.name}.")


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike] | None = None,
    method: str = "basic",
    progress: bool = False,
    ckpt: str | Path | None = None,
    model: str | None = None,
    **options,
) -> Image.Image:
    """Stylise `content` with `style` (one image or several) and return a PIL image.

    `options` are command-line names: `size`, `preserve_color`, `device`, `precision` (basic and
    improved: bf16/fp16 autocast of the VGG passes), `style_weights`, `seed`, any `method.*` key
    (`iterations`, `style_weight`, …) and `loss_net={...}`.
    With `ckpt` (a checkpoint from train.py) or `model` (a zoo model: `nst.zoo.names()`) the
    trained network stylises `content` in one forward pass; `size`, `device`, `precision`,
    `backend` (torch | onnxruntime), `preserve_color` and `strength` (0 … 1) apply. An
    arbitrary-method checkpoint takes `style` (one image, or several mixed by `style_weights`).
    """
    cfg = compose_config("stylize", [f"method={method}"])
    cfg.ckpt = None if ckpt is None else str(ckpt)
    cfg.model = model
    apply_options(cfg, options)
    if style is None:
        styles = []
    elif isinstance(style, (list, tuple)):
        styles = [as_tensor(item) for item in style]
    else:
        styles = [as_tensor(style)]
    return to_pil(run(cfg, as_tensor(content), styles, progress=progress))
