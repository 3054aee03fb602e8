"""Train a feed-forward style network: python train.py method=fast style=wave.

    python train.py method=fast style=wave [data=coco|imagefolder|synthetic] [data.path=DIR]
        [trainer=default|gpu] [trainer.max_steps=N] [logger=csv|none] [hydra.run.dir=DIR]
    python train.py method=fast style=path/to/painting.jpg      (any image)
    python train.py -m method=fast style=wave,candy              (a sweep)
    python train.py method=arbitrary data=painter_by_numbers data.style.path=DIR   (any style)

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

STYLES = Path(__file__).parent / "conf" / "styles"


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
    style = " style=PAINTING" if cfg.method.get("trains_on_styles") else ""
    print(f"Wrote {last}\nStylise with: python stylize.py ckpt={last} input=PHOTO{style}")


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *style_overrides(sys.argv[1:])]
    main()
