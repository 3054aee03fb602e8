"""Train a feed-forward style network: python train.py method=fast style=wave.

    python train.py method=fast style=wave [data=coco|imagefolder|synthetic] [data.path=DIR]
        [trainer=default|gpu] [trainer.max_steps=N] [logger=csv|none] [hydra.run.dir=DIR]
    python train.py method=fast style=path/to/painting.jpg

Every piece is a Hydra config group built with `hydra.utils.instantiate`: `data` (a
LightningDataModule), `method` (a LightningModule), `trainer`, `logger` and `checkpoint`. The
basic and improved methods optimise one image and have nothing to train: use stylize.py.
"""

import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nst.errors import UserError, exit_on_user_error
from nst.methods.common import quiet_lightning

STYLES = Path(__file__).parent / "conf" / "style"


def style_path_overrides(arguments: list[str]) -> list[str]:
    """Turn `style=PATH` (anything but a name in conf/style/) into `style=file style.image=PATH`."""
    result = []
    for argument in arguments:
        key, _, value = argument.partition("=")
        if (
            key == "style"
            and value
            and not (STYLES / f"{value}.yaml").is_file()
            and "," not in value
        ):
            result += ["style=file", f"style.image={value}", f"style.name={Path(value).stem}"]
        else:
            result.append(argument)
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


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    if "_target_" not in cfg.method:
        raise UserError(
            f"method={cfg.method.name} optimises a single image and trains nothing; run "
            f"python stylize.py method={cfg.method.name} input=PHOTO style=PAINTING instead."
        )
    missing = missing_keys(cfg)
    if missing:
        raise UserError(f"{missing[0]} needs a value: add {missing[0]}=… to the command.")
    quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.method, _convert_="all")
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[instantiate(cfg.checkpoint)])
    trainer.fit(module, datamodule=datamodule)
    last = Path(cfg.checkpoint.dirpath) / "last.ckpt"
    print(f"Wrote {last}\nStylise with: python stylize.py ckpt={last} input=PHOTO")


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *style_path_overrides(sys.argv[1:])]
    main()
