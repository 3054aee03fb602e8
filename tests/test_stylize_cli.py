"""stylize.py as a user runs it: end to end on tiny images, and every bad input."""

import subprocess
import sys

import pytest
from conftest import ROOT, load_script, script_env

from nst.api import compose_config
from nst.image import load_image

stylize_script = load_script("stylize")
FAST = ["loss_net.weights=random", "size=32", "method.iterations=2"]


def run_main(*overrides):
    """Call stylize.py's main in-process with a composed config (what Hydra would pass)."""
    stylize_script.main(compose_config("stylize", [*FAST, *overrides]))


def test_command_line_end_to_end(tmp_path, image_files):
    content, style = image_files
    before = {path: path.read_bytes() for path in image_files}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stylize.py"),
            "method=basic",
            f"input={content}",
            f"style={style}",
            *FAST,
            "preserve_color=histogram",
            "device=cpu",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=script_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    output = tmp_path / "content_style.png"
    assert output.exists() and load_image(output).shape[-1] == 32
    assert {path: path.read_bytes() for path in image_files} == before
    assert not (tmp_path / "outputs").exists()  # Hydra writes no run folder for stylize


def test_command_line_bad_input_exits_2_with_one_sentence(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stylize.py"),
            f"input={tmp_path / 'missing.jpg'}",
            "style=sample:mosaic",
            *FAST,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=script_env(),
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: Image not found")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_default_output_never_overwrites(image_files):
    content, style = image_files
    run_main(f"input={content}", f"style={style}")
    run_main(f"input={content}", f"style={style}")
    folder = content.parent
    assert (folder / "content_style.png").exists() and (folder / "content_style_2.png").exists()


def test_several_styles_with_weights_and_explicit_output(tmp_path, image_files):
    content, style = image_files
    output = tmp_path / "blend.jpg"
    run_main(
        f"input={content}",
        f"style=[{style},sample:waves]",
        "style_weights=[0.3,0.7]",
        f"output={output}",
    )
    assert load_image(output).shape[-1] == 32


def test_snapshots_every_n_steps(tmp_path, image_files):
    content, style = image_files
    output = tmp_path / "out.png"
    run_main(
        f"input={content}",
        f"style={style}",
        f"output={output}",
        "method.iterations=4",
        "method.save_every=2",
    )
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out.png", "out_step00002.png"]


def bad_inputs(tmp_path, content, style):
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(content.read_bytes()[:200])
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep me")
    return [
        ([f"input={tmp_path / 'nope.jpg'}", f"style={style}"], "Image not found"),
        ([f"input={content}", f"style={not_image}"], "Cannot read"),
        ([f"input={empty}", f"style={style}"], "it is empty"),
        ([f"input={truncated}", f"style={style}"], "Cannot read"),
        ([f"input={content}", f"style={style}", "method.content_layers=[conv9_1]"], "conv9_1"),
        ([f"input={content}", f"style={style}", "size=0"], "size must be a positive"),
        ([f"input={content}", f"style={style}", "method.iterations=-3"], "iterations"),
        ([f"input={content}", f"style={style}", "method.style_weight=-1"], "style_weight"),
        (
            [f"input={content}", f"style={style}", f"output={tmp_path}/no/dir/out.png"],
            "does not exist",
        ),
        ([f"input={content}", f"style={style}", f"output={style}"], "is also an input"),
        ([f"input={content}", f"style={style}", f"output={existing}"], "already exists"),
        ([f"input={content}", f"style={style}", "output=out.tiff"], "extension"),
        ([f"input={content}", f"style=[{style},{style}]", "style_weights=[1]"], "style_weights"),
        ([f"input={content}"], "needs a style image"),
        ([f"style={style}"], "No input image"),
        ([f"input={content}", f"style={style}", "preserve_color=sepia"], "preserve_color"),
    ]


def test_every_bad_input_exits_2_and_writes_nothing(tmp_path, image_files, capsys):
    content, style = image_files
    for overrides, message in bad_inputs(tmp_path, content, style):
        before = {path: path.read_bytes() for path in tmp_path.iterdir()}
        with pytest.raises(SystemExit) as exit_info:
            run_main(*overrides)
        assert exit_info.value.code == 2, overrides
        stderr = capsys.readouterr().err.strip()
        assert stderr.startswith("error: ") and message in stderr, (overrides, stderr)
        assert len(stderr.splitlines()) == 1, stderr
        assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before, overrides
