"""train.py at scale, as a user runs it: W&B offline, 2-process DDP, SIGKILL and resume, sweeps."""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ASSETS, ROOT, load_script, script_env

from nst.api import compose_config
from nst.errors import UserError
from nst.training import checkpoint_step

train_script = load_script("train")
# Tiny and offline: synthetic photos, a random VGG16, an 8-channel network, a 32 px style.
TINY = [
    "method=fast",
    "style=wave",
    "style.size=32",
    "data=synthetic",
    "data.synthetic=16",
    "data.size=32",
    "data.crop=32",
    "loss_net.weights=random",
    "method.network.channels=8",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]
TINY_SWEEP = [item for item in TINY if not item.startswith("style")]  # sweeps set style=


def environment(tmp_path) -> dict:
    """No W&B credentials and no network: W&B must go offline by itself."""
    env = {
        **script_env(),
        "NST_STYLE_DIR": str(ASSETS / "images" / "style"),
        "NETRC": str(tmp_path / "no_netrc"),
        "OMP_NUM_THREADS": "1",
    }
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        env.pop(name, None)
    return env


def train(arguments, tmp_path, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment(tmp_path),
        **options,
    )


def in_process_config(tmp_path, *overrides):
    arguments = [
        *TINY,
        f"style_dir={ASSETS / 'images' / 'style'}",
        f"run_dir={tmp_path}",
        *overrides,
    ]
    return compose_config("train", train_script.style_overrides(arguments))


def test_wandb_offline_writes_a_run_with_the_config_metrics_and_images(tmp_path, monkeypatch):
    import wandb

    for key, value in environment(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = in_process_config(
        tmp_path,
        "logger=wandb",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "callbacks.throughput.window_size=2",
        "trainer.precision=bf16-mixed",
        "channels_last=true",
    )
    try:
        train_script.main(cfg)
    finally:
        wandb.finish()
        wandb.teardown()  # stops the W&B service once it has flushed the run's records
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (records,) = run.glob("run-*.wandb")  # what `wandb sync` uploads: config, metrics, media
    logged = records.read_bytes()
    for name in (
        "max_steps",
        "bf16-mixed",
        "style_weight",  # the resolved config
        "train/total",
        "train/style",
        "train/content",
        "train/tv",
        "val/total",
        "val/distance/style",  # the evaluator's, at validation
        "lr-Adam",
        "train/device/samples_per_sec",
    ):
        assert name.encode() in logged, name
    assert list((run / "files" / "media" / "images").rglob("*.png"))  # the image grid
    assert (tmp_path / "images" / "step000004.png").is_file()
    assert checkpoint_step(tmp_path / "checkpoints" / "last.ckpt") == 4


def test_top_level_speed_switches_flow_into_the_method(tmp_path):
    cfg = in_process_config(tmp_path, "compile=true", "channels_last=true")
    assert cfg.method.compile is True and cfg.method.channels_last is True
    cfg = in_process_config(tmp_path, "channels_last=true", "method.channels_last=false")
    assert cfg.method.channels_last is False and cfg.method.compile is False  # the method's own


def test_ddp_with_two_cpu_processes_trains_and_writes_one_checkpoint(tmp_path):
    result = train(
        [
            *TINY,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_steps=10",
            "logger=csv",
            "checkpoint.every_n_train_steps=4",
            "trainer.val_check_interval=5",
            "hydra.run.dir=run",
        ],
        tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es) × 4 images = 8 images per step" in result.stdout
    for rank in (0, 1):
        assert f"rank {rank} of 2 stopped at step 10" in result.stdout
    assert result.stdout.count("Wrote ") == 1  # rank 0 alone reports the checkpoint
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [path.name for path in checkpoints.iterdir()] == ["last.ckpt"]
    assert checkpoint_step(checkpoints / "last.ckpt") == 10
    assert sorted(path.name for path in (tmp_path / "run" / "images").iterdir()) == [
        "step000005.png",
        "step000010.png",
    ]


def metric_steps(path) -> list[int]:
    with open(path) as file:
        return [int(row["step"]) for row in csv.DictReader(file)]


def test_a_resumed_run_appends_to_its_metrics_instead_of_deleting_them(tmp_path):
    steps = ["logger=csv", "trainer.val_check_interval=2", "checkpoint.every_n_train_steps=2"]
    train_script.main(in_process_config(tmp_path, *steps, "trainer.max_steps=2"))
    metrics = tmp_path / "metrics.csv"
    first = metrics.read_text().splitlines()
    assert metric_steps(metrics) and max(metric_steps(metrics)) == 1

    resume = in_process_config(tmp_path, *steps, "trainer.max_steps=4", "ckpt_path=last")
    train_script.main(resume)
    with open(metrics) as file:
        rows = list(csv.DictReader(file))
    assert len(rows) > len(first) - 1 and max(int(row["step"]) for row in rows) == 3
    kept = [{key: value for key, value in row.items() if value} for row in rows[: len(first) - 1]]
    # the first run's rows, unchanged under the (possibly wider) header
    assert kept == [{k: v for k, v in row.items() if v} for row in csv.DictReader(first)]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    arguments = [
        *TINY,
        "trainer.max_steps=12",
        "logger=csv",
        "checkpoint.every_n_train_steps=3",
        "trainer.val_check_interval=6",
        "hydra.run.dir=run",
    ]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *arguments],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not last.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_step(last)  # the atomic write left a whole file
    assert 3 <= killed_at < 12, killed_at
    metrics = tmp_path / "run" / "metrics.csv"
    rows_before = len(metric_steps(metrics)) if metrics.is_file() else 0

    result = train([*arguments, "ckpt_path=last"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"resuming from (\S+) \(step (\d+)\)", result.stdout)
    assert match and int(match[2]) >= killed_at, result.stdout
    assert checkpoint_step(last) == 12
    resumed_steps = metric_steps(metrics)[rows_before:]
    assert resumed_steps and min(resumed_steps) >= int(match[2])  # continued, not restarted
    assert max(resumed_steps) == 11  # Lightning logs step N-1 for the N-th optimiser step
    state = torch.load(last, weights_only=True)
    assert state["optimizer_states"][0]["state"]  # full state: Adam moments are in the file


@pytest.mark.slow
def test_a_two_by_two_sweep_runs_every_combination_in_its_own_folder(tmp_path):
    result = train(
        [
            "-m",
            "style=wave,candy",
            "method.style_weight=1e5,3e5",
            *TINY_SWEEP,
            "trainer.max_steps=1",
            "logger=none",
            "hydra.sweep.dir=sweep",
        ],
        tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted(path.name for path in (tmp_path / "sweep").iterdir() if path.is_dir())
    assert folders == [
        f"style={style},method.style_weight={weight}"
        for style in ("candy", "wave")
        for weight in ("100000.0", "300000.0")
    ]
    for folder in folders:
        saved = torch.load(
            tmp_path / "sweep" / folder / "checkpoints" / "last.ckpt", weights_only=True
        )["hyper_parameters"]
        style, weight = saved["style"]["name"], saved["style_weight"]
        assert folder == f"style={style},method.style_weight={weight}"


def test_a_logger_whose_package_is_missing_is_a_user_error(tmp_path):
    cfg = in_process_config(tmp_path, "logger=csv")
    cfg.logger._target_ = "package_that_is_not_installed.Logger"
    with pytest.raises(UserError, match="needs a package that is not installed"):
        train_script.build_logger(cfg)
    assert train_script.build_logger(in_process_config(tmp_path, "logger=none")) is False
