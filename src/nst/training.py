"""Training-run plumbing shared by every trained method (fast, arbitrary): logging, image grids,
safe checkpoint files, resuming and stopping on a diverged loss.

The methods stay plain LightningModules; train.py builds these pieces from the Hydra config.
"""

import math
import netrc
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytorch_lightning as pl
import torch
import torchvision
from pytorch_lightning.callbacks import ModelCheckpoint, ThroughputMonitor
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.plugins.io import TorchCheckpointIO
from torch import Tensor

from nst import errors
from nst.errors import UserError
from nst.image import save_image
from nst.outputs import atomic_file

LR_SCHEDULES = ("constant", "cosine")
WANDB_HOST = "https://api.wandb.ai"
SWEEP_FUNCTIONS = ("range(", "choice(", "glob(", "interval(")
MAX_NAME = 200  # characters of a sweep job folder name


def wandb_configured() -> bool:
    """True when the user has W&B credentials: `WANDB_API_KEY`, or a `wandb login` netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", WANDB_HOST)).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """`WANDB_MODE` when set; otherwise online with credentials and offline without, so that a
    machine without a W&B account (CI) never sees a login prompt."""
    return os.environ.get("WANDB_MODE") or ("online" if wandb_configured() else "offline")


def wandb_logger(**options: Any) -> pl.loggers.WandbLogger:
    """Lightning's `WandbLogger` in `wandb_mode()`; `options` go to it and to `wandb.init`."""
    return pl.loggers.WandbLogger(mode=wandb_mode(), **options)


def batch_size(batch: Any) -> int:
    """Images in a batch: a tensor, or the first tensor of a tuple, list or dict."""
    if isinstance(batch, dict):
        batch = next(iter(batch.values()))
    if isinstance(batch, list | tuple):
        batch = batch[0]
    return len(batch)


class AppendingCSVLogger(pl.loggers.CSVLogger):
    """Lightning's CSVLogger (`logger=csv`), except that an existing `metrics.csv` in the run
    folder is appended to, not deleted: a run resumed with `ckpt_path=last` keeps its history."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        earlier = path.read_text() if path.is_file() else ""
        experiment = super().experiment  # Lightning's writer deletes metrics.csv here
        if earlier:
            path.write_text(earlier)
            experiment.metrics_keys = earlier.partition("\n")[0].strip().split(",")
        return experiment


class TrainingThroughput(ThroughputMonitor):
    """Lightning's `ThroughputMonitor` for training only (`train/device/samples_per_sec`, and
    `train/samples_per_sec` over all DDP processes): the parent logs validation throughput at the
    validation batch index, which would scramble the step axis of every plot."""

    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        pass


def image_grid(rows: list[list[Tensor]]) -> Tensor:
    """One 3×H×W picture of rows of 3×h×w images of any sizes: each image centred in a white cell
    of the largest height and width, 2 px apart (validation photos may differ in shape)."""
    cells = [image.float().clamp(0, 1) for row in rows for image in row]
    height, width = max(c.shape[-2] for c in cells), max(c.shape[-1] for c in cells)
    padded = []
    for cell in cells:
        top, left = (height - cell.shape[-2]) // 2, (width - cell.shape[-1]) // 2
        padding = (left, width - cell.shape[-1] - left, top, height - cell.shape[-2] - top)
        padded.append(torch.nn.functional.pad(cell, padding, value=1.0))
    return torchvision.utils.make_grid(padded, nrow=len(rows[0]), pad_value=1.0)


def log_image_grid(trainer: pl.Trainer, grid: Tensor, name: str = "val/images") -> None:
    """Write a 3×H×W grid to `<run dir>/images/step<N>.png` and to every logger that takes images
    (W&B, TensorBoard), on global rank 0 only."""
    if not trainer.is_global_zero:
        return
    step = trainer.global_step
    folder = Path(trainer.default_root_dir) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    save_image(grid.unsqueeze(0), folder / f"step{step:06d}.png")
    for logger in trainer.loggers:
        if isinstance(logger, pl.loggers.WandbLogger):
            logger.log_image(name, [grid.clamp(0, 1)], step=step)
        elif isinstance(logger, pl.loggers.TensorBoardLogger):
            logger.experiment.add_image(name, grid.clamp(0, 1), step)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it and renames it into place, so a crash
    while saving leaves the previous checkpoint intact (a rename within a folder is atomic)."""

    def save_checkpoint(self, checkpoint: dict, path: str | Path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as temporary, open(temporary, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())


class StepCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint` that also writes `last.ckpt` when training ends between two
    `every_n_train_steps` saves, so the final step is always on disk."""

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        super().on_train_end(trainer, module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class StopOnSigterm(pl.Callback):
    """SIGTERM (a cluster's pre-emption, `kill`) during training ends the current step, writes
    `last.ckpt` at that step (`StepCheckpoint`) and leaves `fit` normally; `train.py` then exits
    with code 143. Raising inside a step instead could land anywhere, even in Lightning's own
    clean-up. All DDP ranks stop at the same step."""

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # Lightning registers its handlers before this hook and restores the old ones after fit.
        signal.signal(signal.SIGTERM, self.note_sigterm)

    @staticmethod
    def note_sigterm(signum: int, frame) -> None:
        errors.terminated = True

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.strategy.reduce_boolean_decision(errors.terminated, all=False):
            trainer.should_stop = True


def last_checkpoint(trainer: pl.Trainer) -> str:
    """The newest checkpoint this run wrote, or where it resumed from, for messages."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "last_model_path", "") or trainer.ckpt_path
    return str(path) if path else "none yet"


class StopOnNonFiniteLoss(pl.Callback):
    """Stops training with a `UserError` naming the step and the last good checkpoint when the
    loss is NaN or infinite, before the bad step reaches the weights or a checkpoint. All ranks
    agree, so no DDP process is left waiting."""

    def on_before_backward(self, trainer: pl.Trainer, module: pl.LightningModule, loss: Tensor):
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        checkpoint = last_checkpoint(trainer)
        advice = "lower method.lr or check the data"
        if checkpoint != "none yet":
            advice = f"resume with ckpt_path={checkpoint} and a lower method.lr"
        raise UserError(
            f"The loss became NaN or infinite at step {trainer.global_step + 1}; training stopped "
            f"(last good checkpoint: {checkpoint}); {advice}."
        )


def resolve_checkpoint(ckpt_path: str | None, checkpoints: str | Path, search_siblings: bool):
    """The checkpoint to resume from for `ckpt_path=`: null (start fresh), a path, or `last`:
    `last.ckpt` in this run's `checkpoints` folder, else (with `search_siblings`, a single run)
    the newest `last.ckpt` of the other runs beside this one (runs/<method>_<style>/*/), else
    None, like Lightning's own `last`, so a requeued cluster job starts fresh the first time."""
    if ckpt_path is None:
        return None
    if ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise UserError(f"ckpt_path={ckpt_path} does not exist; pass a .ckpt file or last.")
        return str(ckpt_path)
    checkpoints = Path(checkpoints)
    if (checkpoints / "last.ckpt").is_file():
        return str(checkpoints / "last.ckpt")
    runs = checkpoints.parent.parent
    siblings = list(runs.glob(f"*/{checkpoints.name}/last.ckpt")) if search_siblings else []
    return str(max(siblings, key=lambda path: path.stat().st_mtime)) if siblings else None


def checkpoint_step(path: str | Path) -> int:
    """The global step a Lightning checkpoint was saved at (read safely, weights only)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return int(checkpoint.get("global_step", 0))


def swept_keys(arguments: list[str]) -> set[str]:
    """The keys a sweep command line varies: `key=a,b`, `key=range(…)`, `choice(…)`, …"""
    keys = set()
    for argument in arguments:
        key, _, value = argument.partition("=")
        if "," in value or value.startswith(SWEEP_FUNCTIONS):
            keys.add(key.lstrip("+~"))
    return keys


def run_name(overrides: list[str]) -> str:
    """A sweep job's folder name from its overrides (`style=wave,method.style_weight=1e5`): the
    swept keys of the command line when known (else all overrides), `styles@style` read as
    `style`, paths cut to their last part, at most MAX_NAME characters."""
    swept = swept_keys(sys.argv[1:])
    parts = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key.startswith(("hydra.", "run_dir", "ckpt_path")) or (swept and key not in swept):
            continue
        parts.append(f"{key.removeprefix('styles@')}={Path(value).name}")
    return ",".join(parts)[:MAX_NAME] or "default"


def adam_with_schedule(
    parameters, lr: float, schedule: str, warmup_steps: int, total_steps: int
) -> dict:
    """Adam (Johnson et al. 2016, §4: lr 1e-3) with a per-step learning-rate schedule, as
    Lightning's `configure_optimizers` dict: `constant` (the paper) or `cosine`, a linear warm-up
    over `warmup_steps` then a cosine decay to zero at `total_steps` (Loshchilov & Hutter 2017,
    eq. 5 without restarts). The scheduler's state is in every checkpoint, so a resume continues
    the schedule where it stopped."""
    if schedule not in LR_SCHEDULES:
        raise UserError(f"Unknown method.lr_schedule '{schedule}'; use constant or cosine.")
    if warmup_steps < 0:
        raise UserError(f"method.warmup_steps must be zero or more, got {warmup_steps}.")
    if schedule == "cosine" and total_steps <= 0:
        raise UserError("method.lr_schedule=cosine decays to 0 at trainer.max_steps: set it.")
    optimizer = torch.optim.Adam(parameters, lr=lr)
    total_steps = max(total_steps, warmup_steps + 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warm_start(module: pl.LightningModule, source: str) -> str:
    """Load trained weights into `module`'s networks before training (`init_from=`): a zoo model
    name (`nst.zoo`) or a train.py checkpoint path. Both must come from the same method and
    network layout; returns a line saying what was loaded."""
    from nst.inference import module_state, read_source  # a zoo name or a checkpoint, read safely

    checkpoint, _ = read_source(source)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    method = module.hparams.get("name")
    if method == "arbitrary" and hparams.get("name") == "fast":
        return arbitrary_from_fast(module, source, checkpoint)
    if hparams.get("name") != method or hparams.get("network") != module.hparams.get("network"):
        raise UserError(
            f"init_from={source} holds a network of method={hparams.get('name')} with settings "
            f"{hparams.get('network')}; this run trains method={method} with "
            f"{module.hparams.get('network')}: start from a model of the same method and layout."
        )
    style = (hparams.get("style") or {}).get("name")  # arbitrary models have no one style
    if "predictor" in hparams and hparams["predictor"] != module.hparams.get("predictor"):
        module.transform.load_state_dict(module_state(checkpoint, "transform"))
        return f"Starting the transfer network from {source}; the style predictor starts afresh"
    module.load_state_dict(checkpoint["state_dict"])
    return f"Starting from the weights of {source}" + (f" (trained on {style})" if style else "")


def arbitrary_from_fast(module: pl.LightningModule, source: str, checkpoint: dict) -> str:
    """`warm_start` of an arbitrary-method transfer network from a fast model of the same width
    and depth (`nst.networks.conditional_from_transform_net`); the predictor starts afresh."""
    from nst.inference import module_state
    from nst.networks import conditional_from_transform_net

    fast, arbitrary = checkpoint["hyper_parameters"]["network"], module.hparams["network"]
    same = all(fast.get(key) == arbitrary.get(key) for key in ("channels", "residual_blocks"))
    if not same or fast.get("upsample", "nearest") != "nearest":
        raise UserError(
            f"init_from={source} is a fast network with settings {fast}; an arbitrary network "
            f"with {arbitrary} can start only from one of the same channels and residual_blocks, "
            "with nearest upsampling."
        )
    conditional_from_transform_net(module.transform, module_state(checkpoint, "transform"))
    style = checkpoint["hyper_parameters"]["style"]["name"]
    return f"Starting the transfer network from the fast model {source} (trained on {style})"
