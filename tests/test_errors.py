"""Failures of the machine (unwritable folders, full disks, memory) are one sentence, exit 2,
and are found before the work starts where they can be."""

import errno

import pytest
from conftest import load_script

from nst.api import compose_config
from nst.errors import exit_on_user_error, machine_error
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
        message.startswith("error: Cannot write to the output folder /proc") and "\n" not in message
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
