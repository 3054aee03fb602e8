"""Failures of the machine (unwritable folders, full disks, memory) are one sentence, exit 2,
and are found before the work starts where they can be."""

import errno

import pytest
from conftest import load_script

from nst.api import compose_config
from nst.errors import UserError, exit_on_user_error, machine_error
from nst.outputs import check_folder

stylize_script = load_script("stylize")


@pytest.mark.parametrize("folder", ["/proc", "/sys"])
def test_a_folder_that_refuses_writes_even_to_root_is_refused_before_any_work(folder):
    with pytest.raises(Exception, match=f"Cannot write to the output folder {folder}"):
        check_folder(f"{folder}/out.png")


def test_stylize_into_proc_exits_2_before_the_optimisation(image_files, capsys, monkeypatch):
    content, style = image_files
    import nst.methods.basic

    def never(*args, **kwargs):
        raise AssertionError("the optimisation ran before the output folder was checked")

    monkeypatch.setattr(nst.methods.basic, "optimize_image", never)
    config = compose_config(
        "stylize", [f"input={content}", f"style={style}", "output=/proc/nst_out.png", "size=32"]
    )
    with pytest.raises(SystemExit) as exit_:
        stylize_script.main(config)
    assert exit_.value.code == 2
    message = capsys.readouterr().err.strip()
    assert (
        message.startswith("error: Cannot write to the output folder /proc (it takes no new files)")
        and "\n" not in message
    )


@pytest.mark.parametrize(
    "error, words",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/out.png"), "no space left"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/out.png"), "permission denied"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
        (
            RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory"),
            "Out of memory",
        ),
        (MemoryError(), "Out of memory"),
    ],
)
def test_write_and_memory_failures_become_one_sentence(error, words, capsys):
    assert words in machine_error(error)

    @exit_on_user_error
    def command():
        raise error

    with pytest.raises(SystemExit) as exit_:
        command()
    assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_other_errors_still_raise():
    assert machine_error(OSError(errno.ENOENT, "No such file")) is None
    assert machine_error(ValueError("a bug")) is None


def test_a_full_disk_while_saving_keeps_the_old_file_and_says_so(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: the PNG cannot be written whole."""
    import resource
    import subprocess
    import sys

    from conftest import ROOT, script_env

    output = tmp_path / "out.png"
    output.write_bytes(b"the previous result")

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    result = subprocess.run(
        [sys.executable, str(ROOT / "stylize.py"), "model=wave", "input=sample:chelsea"]
        + ["size=128", f"output={output}", "overwrite=true"],
        capture_output=True,
        text=True,
        env=script_env(),
        preexec_fn=small_files,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "file too large; nothing was left half-written" in lines[0]
    assert output.read_bytes() == b"the previous result"
    assert [path.name for path in tmp_path.iterdir()] == ["out.png"]


def test_a_checkpoint_that_cannot_be_written_leaves_the_previous_one(tmp_path, monkeypatch):
    import torch

    from nst import training

    path = tmp_path / "last.ckpt"
    training.AtomicCheckpointIO().save_checkpoint({"step": 1}, path)

    def disk_full(checkpoint, file):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(training.torch, "save", disk_full)
    with pytest.raises(OSError) as error:
        training.AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    assert "no space left" in machine_error(error.value)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [item.name for item in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_optimisation_too_big_for_memory_is_refused_with_the_size_that_fits(monkeypatch):
    import torch

    from nst.methods import basic

    config = compose_config("stylize", ["input=x"])
    config.method.size = 20000
    photo, style = torch.zeros(1, 3, 300, 400), torch.zeros(1, 3, 256, 256)
    monkeypatch.setattr(basic, "available_memory", lambda device: 8 * 2**30)
    with pytest.raises(basic.UserError, match="the largest size that fits is about size=") as error:
        basic.check_fits_in_memory(photo.shape, [style], config.method, torch.device("cpu"))
    largest = int(str(error.value).rsplit("size=", 1)[1].rstrip("."))
    config.method.size = largest
    basic.check_fits_in_memory(photo.shape, [style], config.method, torch.device("cpu"))
    config.method.size = int(largest * 1.2)
    with pytest.raises(basic.UserError):
        basic.check_fits_in_memory(photo.shape, [style], config.method, torch.device("cpu"))


def test_a_trained_network_refuses_an_output_too_big_to_hold_before_any_work(monkeypatch):
    import torch

    from nst import inference
    from nst.networks import TransformNet

    monkeypatch.setattr(inference, "available_memory", lambda device: 2**30)
    photo = torch.rand(1, 3, 30, 40)
    with pytest.raises(UserError, match="the largest size that fits is about size=") as error:
        inference.stylize_image(TransformNet(), photo, size=100000, device="cpu")  # 300 GB
    assert "A 100000×75000 px output needs about 279 GiB" in str(error.value)
    largest = int(str(error.value).rsplit("size=", 1)[1].rstrip("."))
    inference.check_whole_image_fits(largest * 3 // 4, largest)  # fits, with room for the tiles
    with pytest.raises(UserError):
        inference.check_whole_image_fits(largest * 3 // 2, largest * 2)
    assert inference.stylize_image(TransformNet(), photo, size=64, device="cpu").shape[-1] == 64
