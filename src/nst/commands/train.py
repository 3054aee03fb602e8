"""Train a feed-forward style network: python train.py method=fast style=wave.

    python train.py method=fast style=wave [data=coco|imagefolder|synthetic] [data.path=DIR]
        [trainer=default|gpu|ddp] [trainer.max_steps=N] [logger=wandb|csv|tensorboard|none]
        [trainer.precision=32|bf16-mixed|16-mixed] [compile=true] [channels_last=true]
        [seed=N trainer.deterministic=true] [ckpt_path=last|PATH] [hydra.run.dir=DIR]
    python train.py method=fast style=path/to/painting.jpg      (any image)
    python train.py -m style=wave,candy method.style_weight=1e5,3e5   (a sweep: every combination)
    python train.py trainer=ddp trainer.devices=4 [trainer.num_nodes=2]  (DDP; torchrun, SLURM)
    python train.py method=arbitrary data=painter_by_numbers data.style.path=DIR   (any style)

Every piece is a Hydra config group built with `hydra.utils.instantiate`: `data` (a
LightningDataModule), `method` (a LightningModule), `trainer`, `logger`, `callbacks` and
`checkpoint`; the run plumbing (W&B mode, atomic checkpoints, NaN stop, resume) is in
`nst.training`. The basic and improved methods optimise one image and have nothing to train: use
stylize.py.
"""

import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor

from nst import errors
from nst.allocator import reused_memory
from nst.commands.hydra_cli import config_dir, run_command
from nst.errors import UserError, exit_on_user_error
from nst.methods.common import quiet_lightning
from nst.training import checkpoint_step, resolve_checkpoint, run_name, warm_start

STYLES = config_dir() / "styles"
OmegaConf.register_new_resolver("run_name", run_name, replace=True)  # sweep folder names


def style_overrides(arguments: list[str]) -> list[str]:
    """Command-line `style=` as Hydra overrides of the config group `styles`, placed at `style`.

    `style=NAME` (conf/styles/NAME.yaml; `NAME,NAME` sweeps) becomes `styles@style=NAME`, and
    `style=PATH` (any image) becomes `styles@style=file style.image=PATH style.name=STEM`. The
    group is not called `style` because a group of that name would turn stylize.py's
    `style=PATH` into a group choice.
    """
    result = []
    for argument in arguments:
        key, _, value = argument.partition("=")
        names = value.split(",")
        if key != "style" or not value:
            result.append(argument)
        elif all((STYLES / f"{name}.yaml").is_file() for name in names):
            result.append(f"styles@style={value}")
        else:
            result += [
                "styles@style=file",
                f"style.image={value}",
                f"style.name={Path(value).stem}",
            ]
    return result


def missing_keys(config: DictConfig, prefix: str = "") -> list[str]:
    """Dotted names of the `???` values in `config`, found without resolving interpolations."""
    found = []
    for key in config:
        if OmegaConf.is_missing(config, key):
            found.append(f"{prefix}{key}")
        elif not OmegaConf.is_interpolation(config, key) and OmegaConf.is_dict(config[key]):
            found += missing_keys(config[key], f"{prefix}{key}.")
    return found


def build_logger(cfg: DictConfig):
    """The `logger` group's logger, or False for logger=none; a missing package is a UserError."""
    if not cfg.get("logger"):
        return False
    try:
        return instantiate(cfg.logger)
    except Exception as error:
        cause = error
        while cause is not None and not isinstance(cause, ImportError):
            cause = cause.__cause__
        if cause is None:
            raise
        choice = HydraConfig.get().runtime.choices.logger if HydraConfig.initialized() else ""
        raise UserError(
            f"logger={choice or cfg.logger._target_} needs a package that is not installed "
            f"({str(cause).splitlines()[0]}); pip install it, or pick another logger=."
        ) from None


def build_callbacks(cfg: DictConfig, logger) -> list[pl.Callback]:
    """The `callbacks` group and the checkpoint; the learning-rate monitor only with a logger."""
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]
    if not logger:
        callbacks = [item for item in callbacks if not isinstance(item, LearningRateMonitor)]
    return [*callbacks, instantiate(cfg.checkpoint)]


def is_multirun() -> bool:
    """True inside a Hydra sweep job (`python train.py -m …`)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def announce(trainer: pl.Trainer, cfg: DictConfig, ckpt_path: str | None) -> None:
    """Print, once, the images per optimiser step over all processes and where training starts."""
    if not trainer.is_global_zero:
        return
    per_device, world = cfg.data.batch_size, trainer.world_size
    accumulate = trainer.accumulate_grad_batches
    batch = per_device * world * accumulate
    lr = cfg.method.get("lr")
    print(
        f"Training {cfg.method.name}: {world} process(es) × {per_device} images"
        + (f" × {accumulate} accumulated" if accumulate > 1 else "")
        + f" = {batch} images per step"
        + (f", lr {lr}" if lr is not None else "")
        + (f"; resuming from {ckpt_path} (step {checkpoint_step(ckpt_path)})" if ckpt_path else "")
    )


def check_named_style(cfg: DictConfig) -> None:
    """A named style (style=wave) whose image is not in `style_dir` stops with a hint."""
    style = cfg.get("style")
    if not style or "image" not in style or OmegaConf.is_missing(style, "image"):
        return  # no style, or recipe=cpu's style.size alone for a method without one
    images = [style.image] if isinstance(style.image, str) else list(style.image)
    for image in images:
        if str(image).startswith(str(cfg.style_dir)) and not Path(image).is_file():
            raise UserError(
                f"style={style.name} needs its image {Path(image).name} in style_dir "
                f"({cfg.style_dir}); set style_dir=DIR or NST_STYLE_DIR to its folder, or pass "
                "style=PATH to any image."
            )


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run_dir = OmegaConf.select(cfg, "run_dir", throw_on_resolution_failure=False)
    with discarded_on_failure(Path(run_dir) if run_dir else None):  # None: outside Hydra
        train(cfg)


PAIRED_DATA = "nst.style_data.PairedDataModule"
SETUP_FILES = ("train.log", "hparams.yaml")  # what a run writes before its first step
SETUP_FOLDERS = (".hydra", "wandb")


@contextmanager
def discarded_on_failure(run_dir: Path | None) -> Iterator[None]:
    """A run that fails before writing anything of its own (only its config and logs are there:
    Hydra's `.hydra/` and `train.log`, the loggers' `hparams.yaml` and `wandb/`) leaves no run
    folder behind, nor the empty folders above it that Hydra made (`runs/fast_wave/`) inside the
    working folder."""
    try:
        yield
    except BaseException:
        if run_dir is None:
            raise
        files = [path.relative_to(run_dir) for path in run_dir.rglob("*") if path.is_file()]
        if all(str(path) in SETUP_FILES or path.parts[0] in SETUP_FOLDERS for path in files):
            shutil.rmtree(run_dir, ignore_errors=True)
            for parent in run_dir.resolve().parents:
                if parent == Path.cwd() or not parent.is_relative_to(Path.cwd()):
                    break
                try:
                    parent.rmdir()  # only while empty
                except OSError:
                    break
        raise


def build_data(cfg: DictConfig) -> pl.LightningDataModule:
    """The `data` group's module; for a method whose config says `trains_on_styles`, the same
    settings as a `PairedDataModule` (photos paired with the style set `data.style`)."""
    paired = {"_target_": PAIRED_DATA} if cfg.method.get("trains_on_styles") else {}
    return instantiate(cfg.data, **paired)


def train(cfg: DictConfig) -> None:
    """Build the data, method, logger and trainer `cfg` describes, and fit."""
    if not cfg.method.get("trainable", True):
        raise UserError(
            f"method={cfg.method.name} optimises a single image and trains nothing; run "
            f"python stylize.py method={cfg.method.name} input=PHOTO style=PAINTING instead."
        )
    missing = missing_keys(cfg)
    if missing:
        raise UserError(f"{missing[0]} needs a value: add {missing[0]}=… to the command.")
    check_named_style(cfg)
    quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_data(cfg)
    module = instantiate(cfg.method, _convert_="all")
    if cfg.init_from:
        print(warm_start(module, cfg.init_from))
    datamodule.setup("fit")  # bad or unreachable data: said before any logger or trainer work
    logger = build_logger(cfg)
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=build_callbacks(cfg, logger))
    ckpt_path = resolve_checkpoint(
        cfg.ckpt_path, cfg.checkpoint.dirpath, search_siblings=not is_multirun()
    )
    announce(trainer, cfg, ckpt_path)
    for each in trainer.loggers:  # the whole resolved config, beside the method's own settings
        each.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    with reused_memory():  # every step allocates the same maps: keep their pages
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if trainer.world_size > 1:
        print(
            f"rank {trainer.global_rank} of {trainer.world_size} stopped at step "
            f"{trainer.global_step}"
        )
    last = Path(cfg.checkpoint.dirpath) / "last.ckpt"
    if errors.terminated:
        print(
            f"stopped by SIGTERM at step {trainer.global_step}; {last} holds it: resume with "
            "ckpt_path=last.",
            file=sys.stderr,
        )
        sys.exit(128 + signal.SIGTERM)
    if trainer.is_global_zero:
        style = " style=PAINTING" if cfg.method.get("trains_on_styles") else ""
        print(f"Wrote {last}\nStylise with: python stylize.py ckpt={last} input=PHOTO{style}")


def cli() -> None:
    """The `nst-train` command (and `python train.py`)."""
    sys.argv = [sys.argv[0], *style_overrides(sys.argv[1:])]
    run_command(main, "train")


if __name__ == "__main__":
    cli()
