"""The two commands as a user types them: mistakes Hydra catches, --help, SIGTERM, racing
writers, and the installed `nst-stylize` / `nst-train` scripts."""

import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time

import pytest
from conftest import ROOT, script_env

from nst.commands.hydra_cli import nearest
from nst.errors import UserError
from nst.image import load_image, save_image
from nst.outputs import atomic_file

TINY = ["loss_net.weights=random", "size=32"]


def command(script: str, *arguments: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / f"{script}.py"), *arguments],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=script_env(),
        timeout=300,
    )


def one_sentence(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a refused command (exit code 2, no traceback)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("script", "arguments", "expected"),
    [
        ("stylize", ["sise=64"], "did you mean size?"),
        ("stylize", ["method.iteratons=3"], "did you mean method.iterations?"),
        ("stylize", ["model=wave", "video.crff=20"], "did you mean video.crf?"),
        ("train", ["trainer.max_stepz=3"], "did you mean trainer.max_steps?"),
        ("train", ["lr=1e-3"], "did you mean method.lr?"),
        ("train", ["method=fsat"], "Unknown method 'fsat' (did you mean fast?)"),
        ("stylize", ["loss_net=vgg91"], "Unknown loss_net 'vgg91' (did you mean vgg19?)"),
        ("stylize", ["size=("], "Cannot read the argument 'size=('"),
    ],
)
def test_mistakes_hydra_catches_are_one_sentence_with_the_nearest_name(
    tmp_path, script, arguments, expected
):
    result = command(script, *arguments, cwd=tmp_path)
    assert expected in one_sentence(result)
    assert list(tmp_path.iterdir()) == []  # no run folder, no output


def test_nearest_prefers_the_whole_name_then_the_leaf():
    keys = ["size", "style", "method.iterations", "data.size", "video.crf"]
    assert nearest("sise", keys) == "size"
    assert nearest("method.iteration", keys) == "method.iterations"
    assert nearest("crf", keys) == "video.crf"
    assert nearest("zzzz", keys) is None


def test_help_is_a_usage_text_for_each_command():
    stylize, train = command("stylize", "--help"), command("train", "--help")
    assert stylize.returncode == train.returncode == 0
    assert "Usage:" in stylize.stdout and "model=NAME input=PHOTO" in stylize.stdout
    assert "trainer" not in stylize.stdout and "== Config ==" not in stylize.stdout
    assert "recipe=cpu" in train.stdout
    assert "method: arbitrary, basic, fast, improved" in train.stdout
    assert "Powered by Hydra" not in train.stdout


def test_sigterm_stops_a_run_with_143_and_writes_nothing(tmp_path):
    output = tmp_path / "out.png"
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "stylize.py"),
            "input=sample:chelsea",
            "style=sample:mosaic",
            *TINY,
            "method.iterations=100000",
            "method.tolerance=0",  # never converged, however long it runs
            f"output={output}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=script_env(),
    )
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: process.stdout.read(1), "")))
    reader.start()
    deadline = time.monotonic() + 240
    while "Stylizing:" not in "".join(seen) and time.monotonic() < deadline:
        time.sleep(0.5)  # wait for the optimisation to start
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    reader.join(timeout=10)
    printed = "".join(seen)
    assert "Stylizing:" in printed and "Epoch 0" not in printed and "Training:" not in printed
    assert "interrupted: nothing was written." in printed and "Traceback" not in printed
    assert list(tmp_path.iterdir()) == []


def test_a_name_taken_while_working_is_refused_not_overwritten(tmp_path, content_image):
    """Two runs racing for one output: the second to finish says the file exists."""
    path = tmp_path / "out.png"
    with (
        pytest.raises(UserError, match="already exists"),
        atomic_file(path, overwrite=False) as temporary,
    ):
        temporary.write_bytes(b"this run's picture")
        path.write_bytes(b"the other run's picture")  # it finished first
    assert path.read_bytes() == b"the other run's picture"
    assert [item.name for item in tmp_path.iterdir()] == ["out.png"]  # no temporary left
    save_image(content_image, tmp_path / "new.png", overwrite=False)
    assert load_image(tmp_path / "new.png").shape == content_image.shape


def test_two_stylize_runs_for_one_output_one_writes(tmp_path):
    """Both start before either has written: exactly one result, one 'already exists'."""
    output = tmp_path / "out.png"
    arguments = ["input=sample:chelsea", "style=sample:mosaic", *TINY, "method.iterations=3"]
    processes = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "stylize.py"), *arguments, f"output={output}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=script_env(),
        )
        for _ in range(2)
    ]
    results = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    assert any("already exists" in stderr for code, stderr in results if code == 2)
    assert load_image(output).shape[-1] == 32
    assert [item.name for item in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.slow
def test_installed_commands_work_from_any_folder(tmp_path):
    """A non-editable `pip install .` into a fresh venv: nst-stylize and nst-train run from an
    empty folder, with the packaged configs and zoo (the dependencies come from this venv)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # this venv's packages, on the path without its .pth files (so not the editable nst)
    (venv / site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(ROOT)], check=True
    )
    folder = tmp_path / "anywhere"
    folder.mkdir()
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    def installed(name, *arguments):
        return subprocess.run(
            [str(venv / "bin" / name), *arguments],
            capture_output=True,
            text=True,
            cwd=folder,
            env=environment,
            timeout=300,
        )

    where = subprocess.run(
        [str(python), "-c", "import nst; print(nst.__file__)"], capture_output=True, text=True
    )
    assert str(venv) in where.stdout  # the installed copy, not this checkout
    result = installed("nst-stylize", "model=wave", "input=sample:chelsea", "size=64")
    assert result.returncode == 0, result.stderr
    assert load_image(folder / "chelsea_wave.png").shape[-1] == 64
    assert "did you mean size?" in installed("nst-stylize", "sise=64").stderr
    assert "Usage:" in installed("nst-train", "--help").stdout


def test_a_run_that_fails_before_its_first_step_leaves_no_folder(tmp_path):
    from conftest import ASSETS

    arguments = ["method=fast", "style=wave", "data=imagefolder", f"data.path={tmp_path / 'no'}"]
    arguments += [f"style_dir={ASSETS / 'images' / 'style'}", "logger=csv"]
    result = command("train", *arguments, cwd=tmp_path)  # into runs/fast_wave/<time>/
    assert "Cannot load training images" in one_sentence(result)
    assert list(tmp_path.iterdir()) == []


def test_bad_data_is_said_before_any_logger_or_trainer_is_built(tmp_path, monkeypatch):
    from conftest import ASSETS

    from nst.api import compose_config
    from nst.commands import train as train_script

    def too_early(cfg):
        raise AssertionError("a logger was built before the data was checked")

    monkeypatch.setattr(train_script, "build_logger", too_early)
    arguments = ["method=fast", "style=wave", "data=imagefolder", f"data.path={tmp_path / 'no'}"]
    arguments.append(f"style_dir={ASSETS / 'images' / 'style'}")
    cfg = compose_config("train", train_script.style_overrides(arguments))
    with pytest.raises(UserError, match="Cannot load training images"):
        train_script.train(cfg)


def test_a_run_folder_hydra_cannot_make_is_one_sentence(tmp_path):
    result = command("train", "method=fast", "style=wave", "hydra.run.dir=/proc/nst_run")
    assert one_sentence(result) == (
        "error: Cannot write the run's files at /proc/nst_run (it takes no new files); "
        "pick another hydra.run.dir."
    )


def test_a_run_folder_with_its_own_files_is_kept(tmp_path):
    from nst.commands.train import discarded_on_failure

    for name, kept in (("empty", False), ("metrics", True)):
        run_dir = tmp_path / name
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (run_dir / "train.log").write_text("")
        (run_dir / "hparams.yaml").write_text("seed: 0\n")  # the loggers' copy of the config
        (run_dir / "wandb" / "offline-run-1").mkdir(parents=True)
        (run_dir / "wandb" / "offline-run-1" / "run-1.wandb").write_bytes(b"config")
        if kept:
            (run_dir / "metrics.csv").write_text("step,loss\n0,1.0\n")
        with pytest.raises(UserError), discarded_on_failure(run_dir):
            raise UserError("stopped")
        assert run_dir.exists() == kept


@pytest.mark.slow
def test_sigterm_during_training_keeps_a_checkpoint_that_resumes(tmp_path):
    from conftest import ASSETS

    run_dir = tmp_path / "run"
    arguments = [
        *("method=fast", "style=wave", "data=synthetic", "loss_net.weights=random"),
        *("data.size=32", "data.crop=32", "logger=none", f"hydra.run.dir={run_dir}"),
        *("checkpoint.every_n_train_steps=2", "data.workers=1"),
    ]
    env = {**script_env(), "NST_STYLE_DIR": str(ASSETS / "images" / "style")}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *arguments, "trainer.max_steps=100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    os.killpg(process.pid, signal.SIGTERM)  # as a scheduler does: the loader worker too
    returncode, stderr = process.wait(timeout=120), process.stderr.read()
    assert returncode == 143, stderr[-2000:]
    assert [path.name for path in last.parent.iterdir()] == ["last.ckpt"]  # no half file
    import torch

    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert f"stopped by SIGTERM at step {step}; " in stderr  # the checkpoint is of the last step
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *arguments, "ckpt_path=last"]
        + [f"trainer.max_steps={step + 2}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"(step {step})" in resumed.stdout
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == step + 2


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_device_auto_picks_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    import torch

    from nst.methods.common import torch_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert torch_device("auto") == torch.device(expected)
    assert torch_device("cpu") == torch.device("cpu")
    if not mps:
        with pytest.raises(UserError, match="device=mps but Apple's MPS is not available"):
            torch_device("mps")


@pytest.mark.parametrize("kind", ["folder", "video"])
@pytest.mark.parametrize(("stop", "code"), [("ctrl-c", 130), ("sigterm", 143)])
def test_an_interrupted_folder_or_video_exits_130_or_143_and_writes_nothing(
    tmp_path, monkeypatch, capsys, kind, stop, code
):
    from conftest import load_script, pattern, tiny_fast_checkpoint, write_video

    from nst import errors, inference
    from nst.api import compose_config

    checkpoint = tiny_fast_checkpoint(tmp_path / "tiny.ckpt")
    if kind == "folder":
        source = tmp_path / "photos"
        source.mkdir()
        for index in range(3):
            save_image(pattern(24, 32, index), source / f"photo{index}.png")
    else:
        source = write_video(tmp_path / "clip.mp4", frames=8, audio="aac")
    before = sorted(path.name for path in tmp_path.rglob("*"))
    real = inference.batch_stylizer

    def interrupted_on_the_second_batch(*args, **kwargs):
        stylize, calls = real(*args, **kwargs), []

        def run(images):
            calls.append(len(images))
            if len(calls) == 2:
                if stop == "sigterm":
                    errors.on_sigterm(signal.SIGTERM, None)  # what the signal would run
                raise KeyboardInterrupt
            return stylize(images)

        return run

    monkeypatch.setattr(inference, "batch_stylizer", interrupted_on_the_second_batch)
    monkeypatch.setattr(errors, "terminated", False)
    config = compose_config("stylize", [f"ckpt={checkpoint}", f"input={source}", "batch_size=1"])
    with pytest.raises(SystemExit) as exit_:
        load_script("stylize").main(config)
    assert exit_.value.code == code
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the video's progress bar
    assert last == "interrupted: nothing was written."
    assert sorted(path.name for path in tmp_path.rglob("*")) == before
