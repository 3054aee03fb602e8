"""Every option of every config group composes with Hydra and instantiates, so a broken YAML
file fails here (the lightning-hydra-template habit)."""

import importlib.util

import pytest
import pytorch_lightning as pl
import torch
from conftest import ASSETS, ROOT, load_script
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nst.api import compose_config
from nst.methods.basic import check_config
from nst.vgg import LossNetwork, layer_names

CONF = ROOT / "conf"
STYLE_DIR = ASSETS / "images" / "style"
train_script = load_script("train")  # registers the run_name resolver
# Settings every composed training config gets: no hydra run folder, tiny and offline.
BASE = ["style=wave", f"style_dir={STYLE_DIR}", "loss_net.weights=random", "data.path=photos"]


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def train_config(*overrides, tmp_path):
    arguments = [*BASE, f"run_dir={tmp_path}", *overrides]
    return compose_config("train", train_script.style_overrides(arguments))


def test_every_group_has_its_options():
    assert {"wandb", "csv", "tensorboard", "none"} <= set(options("logger"))
    assert {"default", "gpu", "ddp"} <= set(options("trainer"))
    assert {"default", "none"} <= set(options("callbacks"))


@pytest.mark.parametrize("name", options("trainer"))
def test_every_trainer_instantiates(name, tmp_path):
    cfg = train_config(f"trainer={name}", "trainer.accelerator=cpu", tmp_path=tmp_path)
    if name == "ddp":
        cfg.trainer.devices = 2
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer, pl.Trainer) and trainer.max_steps == cfg.trainer.max_steps
    assert type(trainer.strategy.checkpoint_io).__name__ == "AtomicCheckpointIO"
    assert trainer.world_size == (2 if name == "ddp" else 1)


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_every_precision_instantiates(precision, tmp_path):
    cfg = train_config(
        f"trainer.precision={precision}", "trainer.accelerator=cpu", tmp_path=tmp_path
    )
    expected = {"32": "32-true", "16-mixed": "bf16-mixed"}.get(precision, precision)
    assert instantiate(cfg.trainer, logger=False).precision == expected  # no fp16 AMP on CPU


def test_seed_with_the_deterministic_option(tmp_path):
    cfg = train_config(
        "seed=7", "trainer.deterministic=true", "trainer.accelerator=cpu", tmp_path=tmp_path
    )
    try:
        instantiate(cfg.trainer, logger=False)
        assert torch.are_deterministic_algorithms_enabled() and cfg.data.seed == 7
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("name", options("logger"))
def test_every_logger_instantiates_offline(name, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")  # no run is started; only the object is built
    cfg = train_config(f"logger={name}", tmp_path=tmp_path)
    logger = instantiate(cfg.logger) if cfg.get("logger") else None
    assert (logger is None) == (name == "none")
    if logger is not None:
        assert isinstance(logger, pl.loggers.Logger)


@pytest.mark.parametrize("name", options("callbacks"))
def test_every_callback_set_and_the_checkpoint_instantiate(name, tmp_path):
    cfg = train_config(f"callbacks={name}", tmp_path=tmp_path)
    callbacks = train_script.build_callbacks(cfg, logger=True)
    assert all(isinstance(callback, pl.Callback) for callback in callbacks)
    checkpoint = callbacks[-1]
    assert checkpoint.dirpath == str(tmp_path / "checkpoints") and checkpoint.save_last
    assert not checkpoint.save_weights_only  # full state: ckpt_path=last resumes exactly


@pytest.mark.parametrize("name", options("data"))
def test_every_data_option_instantiates(name, tmp_path):
    cfg = train_config(f"data={name}", tmp_path=tmp_path)
    assert isinstance(instantiate(cfg.data), pl.LightningDataModule)


@pytest.mark.parametrize("name", options("loss_net"))
def test_every_loss_net_option_composes(name, tmp_path):
    cfg = train_config(f"loss_net={name}", tmp_path=tmp_path)
    network = LossNetwork(cfg.loss_net.arch, cfg.loss_net.weights)  # random: no download
    assert set(cfg.method.style_layers) <= set(layer_names(network.arch))


@pytest.mark.parametrize("name", options("method"))
def test_every_method_composes_and_trainable_ones_instantiate(name, tmp_path):
    cfg = (
        train_config(
            f"method={name}", "style.size=32", "method.network.channels=4", tmp_path=tmp_path
        )
        if name == "fast"
        else train_config(f"method={name}", tmp_path=tmp_path)
    )
    if "_target_" in cfg.method:
        assert isinstance(instantiate(cfg.method, _convert_="all"), pl.LightningModule)
    else:  # basic/improved optimise one image: stylize.py composes them, and they must run
        check_config(compose_config("stylize", [f"method={name}"]).method)


@pytest.mark.parametrize("name", options("styles"))
def test_every_named_style_composes(name, tmp_path):
    if name == "file":
        cfg = train_config(f"style={STYLE_DIR / 'wave_jcjohnson.jpg'}", tmp_path=tmp_path)
    else:
        cfg = train_config(f"style={name}", tmp_path=tmp_path)
    assert cfg.style.name == (name if name != "file" else "wave_jcjohnson")


def test_the_resolved_config_has_no_hydra_paths_left(tmp_path):
    resolved = OmegaConf.to_container(train_config(tmp_path=tmp_path), resolve=True)
    assert resolved["checkpoint"]["dirpath"] == f"{tmp_path}/checkpoints"
    assert resolved["logger"]["save_dir"] == str(tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install 'nst[slurm]')",
)
def test_the_slurm_launcher_composes_and_instantiates(tmp_path):
    GlobalHydra.instance().clear()
    overrides = [
        *train_script.style_overrides(BASE),
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={tmp_path}",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.tasks_per_node == 1
    assert launcher.submitit_folder == f"{tmp_path}/.submitit/%j"
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"
