"""Training at scale: W&B mode, atomic checkpoints, the NaN stop, resume, sweep folder names."""

import os

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from nst import training
from nst.errors import UserError


@pytest.fixture
def no_wandb_credentials(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_wandb_is_offline_without_credentials_and_respects_the_environment(
    no_wandb_credentials, monkeypatch
):
    assert training.wandb_mode() == "offline"
    no_wandb_credentials.write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40)
    no_wandb_credentials.chmod(0o600)
    assert training.wandb_mode() == "online"  # `wandb login` was run
    no_wandb_credentials.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert training.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert training.wandb_mode() == "offline"


def test_batch_size_of_tensors_tuples_and_dicts():
    images = torch.zeros(3, 3, 8, 8)
    assert training.batch_size(images) == 3
    assert training.batch_size((images, torch.zeros(1, 3, 8, 8))) == 3
    assert training.batch_size({"content": images}) == 3


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    saver = training.AtomicCheckpointIO()
    saver.save_checkpoint({"global_step": 1}, path)

    def crash(checkpoint, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        saver.save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"global_step": 1}
    assert [item.name for item in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left


class Diverging(pl.LightningModule):
    """One weight trained with Adam; the loss turns NaN at optimiser step `nan_at` (1-based)."""

    def __init__(self, nan_at: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.nan_at = nan_at

    def training_step(self, batch, index):
        loss = (self.weight * batch).pow(2).mean()
        return loss * float("nan") if self.global_step + 1 == self.nan_at else loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)


def tiny_trainer(folder, steps: int, callbacks=()) -> pl.Trainer:
    checkpoint = training.StepCheckpoint(
        dirpath=folder,
        every_n_train_steps=2,
        save_top_k=0,
        save_last=True,
        enable_version_counter=False,
    )
    return pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[training.AtomicCheckpointIO()],
        callbacks=[*callbacks, checkpoint],
        accelerator="cpu",
    )


def batches():
    return DataLoader(torch.ones(64, 1), batch_size=1)


def test_a_nan_loss_stops_before_the_bad_step_and_names_the_last_checkpoint(tmp_path):
    module = Diverging(nan_at=6)
    trainer = tiny_trainer(tmp_path, steps=10, callbacks=[training.StopOnNonFiniteLoss()])
    with pytest.raises(UserError) as error:
        trainer.fit(module, train_dataloaders=batches())
    message = str(error.value)
    assert "NaN or infinite at step 6" in message and str(tmp_path / "last.ckpt") in message
    assert "ckpt_path=" in message
    assert training.checkpoint_step(tmp_path / "last.ckpt") == 4  # written before the NaN
    assert torch.isfinite(module.weight).all()  # the bad step never reached the weight


def test_a_nan_at_the_first_step_says_there_is_no_checkpoint(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=4, callbacks=[training.StopOnNonFiniteLoss()])
    with pytest.raises(UserError, match="step 1; .*none yet"):
        trainer.fit(Diverging(nan_at=1), train_dataloaders=batches())


def test_training_always_ends_with_a_checkpoint_of_the_last_step(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=5)  # saves at 2 and 4, then at the end
    trainer.fit(Diverging(nan_at=0), train_dataloaders=batches())
    assert training.checkpoint_step(tmp_path / "last.ckpt") == 5


def test_resume_restores_step_optimizer_and_continues(tmp_path):
    """3 steps + 3 resumed steps equal 6 uninterrupted ones: the Adam moments come back too."""
    torch.manual_seed(0)
    straight = Diverging(nan_at=0)
    tiny_trainer(tmp_path / "straight", steps=6).fit(straight, train_dataloaders=batches())
    first = Diverging(nan_at=0)
    tiny_trainer(tmp_path / "run", steps=3).fit(first, train_dataloaders=batches())
    resumed = Diverging(nan_at=0)
    trainer = tiny_trainer(tmp_path / "run", steps=6)
    trainer.fit(resumed, train_dataloaders=batches(), ckpt_path=tmp_path / "run" / "last.ckpt")
    assert trainer.global_step == 6
    torch.testing.assert_close(resumed.weight, straight.weight)


def test_ckpt_path_last_finds_this_run_or_the_newest_sibling(tmp_path):
    runs = tmp_path / "runs" / "fast_wave"
    old, new, current = runs / "old", runs / "new", runs / "current"
    for folder in (old, new):
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")
    os.utime(old / "checkpoints" / "last.ckpt", (1, 1))
    current_checkpoints = current / "checkpoints"
    assert training.resolve_checkpoint(None, current_checkpoints, True) is None
    newest = str(new / "checkpoints/last.ckpt")
    assert training.resolve_checkpoint("last", current_checkpoints, True) == newest
    own = str(old / "checkpoints/last.ckpt")
    assert training.resolve_checkpoint("last", old / "checkpoints", True) == own
    # A sweep job looks in its own folder only, and starts fresh there.
    assert training.resolve_checkpoint("last", current_checkpoints, False) is None
    with pytest.raises(UserError, match="does not exist"):
        training.resolve_checkpoint(str(tmp_path / "nowhere.ckpt"), current, True)


def test_sweep_folders_are_named_by_the_swept_overrides(monkeypatch):
    command = ["train.py", "styles@style=wave,candy", "method.style_weight=1e5,3e5", "seed=2"]
    monkeypatch.setattr("sys.argv", command)
    overrides = ["styles@style=candy", "method.style_weight=300000.0", "seed=2"]
    assert training.run_name(overrides) == "style=candy,method.style_weight=300000.0"
    monkeypatch.setattr("sys.argv", ["worker"])  # e.g. a SLURM job: every override, paths cut
    assert training.run_name(["style.image=/a/b/c.jpg", "seed=1", "hydra.run.dir=x"]) == (
        "style.image=c.jpg,seed=1"
    )


def test_the_cosine_schedule_warms_up_then_decays_to_zero():
    from nst.training import adam_with_schedule

    parameter = torch.nn.Parameter(torch.zeros(1))
    config = adam_with_schedule([parameter], 1e-3, "cosine", warmup_steps=4, total_steps=14)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(14):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(2.5e-4) and rates[3] == pytest.approx(1e-3)
    assert rates[9] == pytest.approx(5e-4)  # half way through the decay
    assert all(a > b for a, b in zip(rates[4:], rates[5:], strict=False))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_a_constant_schedule_and_bad_schedules():
    from nst.training import adam_with_schedule

    parameter = torch.nn.Parameter(torch.zeros(1))
    config = adam_with_schedule([parameter], 1e-3, "constant", warmup_steps=0, total_steps=-1)
    assert config["optimizer"].param_groups[0]["lr"] == 1e-3
    with pytest.raises(UserError, match="set it"):
        adam_with_schedule([parameter], 1e-3, "cosine", warmup_steps=0, total_steps=-1)
    with pytest.raises(UserError, match="Unknown method.lr_schedule 'linear'"):
        adam_with_schedule([parameter], 1e-3, "linear", warmup_steps=0, total_steps=10)
