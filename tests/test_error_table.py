"""docs/ERRORS.md, generated from the cases this test runs, so the table cannot drift.

Each case is a command line a user might type, run through the commands' own code (Hydra's
composition and `hydra_error_sentence` for the mistakes Hydra catches, then the command's
`main`); each must end in one sentence with exit code 2. The table is compared with the file;
`NST_WRITE_ERRORS=1 pytest tests/test_error_table.py` rewrites it.
"""

import os
from pathlib import Path

import pytest
import torch
from conftest import ROOT, load_script, png_claiming, tiny_fast_checkpoint, write_audio_only

from nst.api import compose_config
from nst.commands.hydra_cli import hydra_error_sentence
from nst.image import save_image

TABLE = ROOT / "docs" / "ERRORS.md"
PHOTO = ["input=photo.jpg", "style=painting.jpg", "loss_net.weights=random", "size=32"]
CASES = [
    ("a mistyped option", "stylize", ["sise=64", *PHOTO]),
    ("a mistyped option of a method", "stylize", [*PHOTO, "method.iteratons=3"]),
    ("an unknown method", "stylize", ["method=fats", *PHOTO]),
    ("an unreadable argument", "stylize", [*PHOTO, "size=("]),
    ("no input", "stylize", ["style=painting.jpg"]),
    ("an input that does not exist", "stylize", ["input=missing.jpg", *PHOTO[1:]]),
    ("a text file named like an image", "stylize", ["input=notes.jpg", *PHOTO[1:]]),
    ("an empty image file", "stylize", ["input=empty.png", *PHOTO[1:]]),
    ("a truncated JPEG", "stylize", ["input=truncated.jpg", *PHOTO[1:]]),
    ("a decompression bomb", "stylize", ["input=bomb.png", *PHOTO[1:]]),
    ("a folder as the style", "stylize", ["input=photo.jpg", "style=photos", *PHOTO[2:]]),
    ("an output in a missing folder", "stylize", [*PHOTO, "output=nowhere/out.png"]),
    ("an output that is the input", "stylize", [*PHOTO, "output=photo.jpg"]),
    ("an output that exists", "stylize", [*PHOTO, "output=taken.png"]),
    ("an output format nst cannot write", "stylize", [*PHOTO, "output=out.gif"]),
    ("an output where nobody may write", "stylize", [*PHOTO, "output=/proc/out.png"]),
    ("a size too big for memory (8 GiB free)", "stylize", [*PHOTO[:3], "size=20000"]),
    ("a negative size", "stylize", [*PHOTO[:3], "size=-5"]),
    ("style weights that do not match", "stylize", [*PHOTO, "style_weights=[1,2]"]),
    ("an unknown device", "stylize", [*PHOTO, "device=tpu"]),
    ("an unknown zoo model", "stylize", ["model=wavee", "input=photo.jpg"]),
    ("a damaged checkpoint", "stylize", ["ckpt=damaged.ckpt", "input=photo.jpg"]),
    ("a strength out of range", "stylize", ["model=wave", "input=photo.jpg", "strength=2"]),
    ("an unknown backend", "stylize", ["model=wave", "input=photo.jpg", "backend=tensorrt"]),
    (
        "a zoo model at a size too big to hold",
        "stylize",
        ["model=wave", "input=photo.jpg", "size=90000"],
    ),
    ("the arbitrary model without a style", "stylize", ["model=arbitrary", "input=photo.jpg"]),
    ("a video without a video stream", "stylize", ["model=wave", "input=sound.mp4"]),
    ("export without a network", "stylize", [*PHOTO, "export=onnx"]),
    ("an unknown export format", "stylize", ["model=wave", "export=tflite"]),
    ("training an optimisation method", "train", ["method=basic"]),
    ("a mistyped training option", "train", ["method=fast", "trainer.max_stepz=3"]),
    ("a training option at the wrong level", "train", ["method=fast", "lr=1e-3"]),
    ("an unknown data set", "train", ["method=fast", "data=cocoo"]),
]


@pytest.fixture
def user_folder(tmp_path, monkeypatch, content_image, style_image):
    """A folder holding what the cases refer to, as the working directory."""
    monkeypatch.chdir(tmp_path)
    save_image(content_image, tmp_path / "photo.jpg")
    save_image(style_image, tmp_path / "painting.jpg")
    save_image(content_image, tmp_path / "taken.png")
    (tmp_path / "notes.jpg").write_text("a shopping list\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "photo.jpg").read_bytes()[:300])
    (tmp_path / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    (tmp_path / "photos").mkdir()
    tiny_fast_checkpoint(tmp_path / "good.ckpt")
    (tmp_path / "damaged.ckpt").write_bytes((tmp_path / "good.ckpt").read_bytes()[:500])
    write_audio_only(tmp_path / "sound.mp4")
    return tmp_path


def run_case(script: str, overrides: list[str], folder: Path, capsys) -> str:
    """The one line the command prints on stderr for `overrides` (exit code 2 asserted)."""
    arguments = list(overrides)
    if script == "train":
        arguments = load_script("train").style_overrides([*arguments, f"run_dir={folder / 'run'}"])
    try:
        config = compose_config(script, arguments)
    except Exception as error:
        sentence = hydra_error_sentence(error, script, arguments)
        assert sentence is not None, error
        return f"error: {sentence}"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        load_script(script).main(config)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def render(rows: list[tuple[str, str, str]]) -> str:
    lines = [
        "# What nst says when something is wrong",
        "",
        "Generated by `NST_WRITE_ERRORS=1 pytest tests/test_error_table.py` from the cases that",
        "test runs (each ends in this one sentence on stderr and exit code 2, with nothing",
        "written). Files are relative to the folder the command runs in.",
        "",
        "| What you did | Command | What nst says |",
        "|---|---|---|",
    ]
    for what, command, said in rows:
        said = said.removeprefix("error: ").replace("|", "\\|")
        lines.append(f"| {what} | `{command}` | {said} |")
    return "\n".join(lines) + "\n"


def test_every_case_is_one_sentence_and_the_table_is_current(user_folder, capsys, monkeypatch):
    from nst import inference
    from nst.methods import basic

    monkeypatch.setattr(basic, "available_memory", lambda device: 8 * 2**30)
    monkeypatch.setattr(inference, "available_memory", lambda device: 8 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows = []
    for what, script, overrides in CASES:
        said = run_case(script, overrides, user_folder, capsys).replace(f"{user_folder}/", "")
        shown = [item for item in overrides if "loss_net.weights" not in item]
        rows.append((what, f"python {script}.py {' '.join(shown)}", said))
    made = {"photo.jpg", "painting.jpg", "taken.png", "notes.jpg", "empty.png", "truncated.jpg"}
    made |= {"bomb.png", "photos", "good.ckpt", "damaged.ckpt", "sound.mp4"}
    assert {path.name for path in user_folder.iterdir()} == made  # no case wrote anything
    table = render(rows)
    if os.environ.get("NST_WRITE_ERRORS"):
        TABLE.write_text(table)
    assert TABLE.read_text() == table, "docs/ERRORS.md is stale: NST_WRITE_ERRORS=1 pytest …"
