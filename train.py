"""Train a feed-forward style network: python train.py method=fast style=wave.

The basic and improved methods optimise one image and have nothing to train: use stylize.py.
"""

import hydra
from omegaconf import DictConfig

from nst.errors import UserError, exit_on_user_error


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    raise UserError(
        f"method={cfg.method.name} optimises a single image and trains nothing; run "
        f"python stylize.py method={cfg.method.name} input=PHOTO style=PAINTING instead."
    )


if __name__ == "__main__":
    main()
