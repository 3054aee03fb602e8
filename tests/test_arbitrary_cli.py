"""train.py and stylize.py with the arbitrary method, as a user runs them."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ASSETS, ROOT, load_script, pattern, script_env

import nst
from nst.api import compose_config
from nst.image import load_image, save_image
from nst.inference import batch_stylizer, load_stylizer

TRAIN = [
    "method=arbitrary",
    "data=synthetic",
    "loss_net.weights=random",
    "trainer.max_steps=20",
    "logger=none",
]
stylize_script = load_script("stylize")
# The 20-step training run dominates (about 30 s on a quiet 2-core CPU): CI runs these.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The issue's command, verbatim: it must write last.ckpt in the run folder."""
    folder = tmp_path_factory.mktemp("train")
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TRAIN, f"hydra.run.dir={folder / 'run'}"],
        capture_output=True,
        text=True,
        cwd=folder,
        env=script_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture
def files(tmp_path):
    photo = save_image(pattern(36, 52, seed=3), tmp_path / "photo.png")
    first = save_image(pattern(40, 40, seed=5), tmp_path / "first.png")
    second = save_image(
        torch.rand(1, 3, 30, 44, generator=torch.Generator().manual_seed(6)),
        tmp_path / "second.png",
    )
    return photo, first, second


def stylize(*overrides):
    stylize_script.main(compose_config("stylize", list(overrides)))


def test_train_writes_last_ckpt_and_stylize_uses_it_with_any_style(checkpoint, files, tmp_path):
    photo, first, _ = files
    before = photo.read_bytes()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stylize.py"),
            f"ckpt={checkpoint}",
            f"input={photo}",
            f"style={first}",
            "strength=0.6",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=script_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    output = load_image(tmp_path / "photo_first.png")
    assert output.shape == (1, 3, 36, 52) and photo.read_bytes() == before
    network = load_stylizer(checkpoint, [load_image(first)], strength=0.6)
    expected = batch_stylizer(network, torch.device("cpu"), "auto")(load_image(photo))
    assert (output - expected).abs().max() <= 1 / 255 + 1e-6  # only 8-bit rounding


def test_styles_mix_by_weight_and_folders_are_stylised(checkpoint, files, tmp_path):
    photo, first, second = files
    output = tmp_path / "mixed.png"
    stylize(
        f"ckpt={checkpoint}",
        f"input={photo}",
        f"style=[{first},{second}]",
        "style_weights=[0.3,0.7]",
        f"output={output}",
    )
    mixed = load_stylizer(checkpoint, [load_image(first), load_image(second)], [0.3, 0.7])
    expected = batch_stylizer(mixed, torch.device("cpu"), "auto")(load_image(photo))
    assert (load_image(output) - expected).abs().max() <= 1 / 255 + 1e-6
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(pattern(40, 60, seed=1), photos / "a.png")
    save_image(pattern(40, 60, seed=2), photos / "b.png")
    stylize(f"ckpt={checkpoint}", f"input={photos}", f"style={first}", "batch_size=2")
    assert sorted(path.name for path in (tmp_path / "photos_first").iterdir()) == ["a.png", "b.png"]


def test_export_writes_the_predictor_and_the_transformer(checkpoint, tmp_path):
    output = tmp_path / "arb.onnx"
    stylize(f"ckpt={checkpoint}", "export=onnx", f"output={output}")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "arb.predictor.onnx",
        "arb.transformer.onnx",
    ]
    import onnxruntime

    network = load_stylizer(checkpoint, [pattern(32, 32, seed=7)], style_size=None)
    style, photo = pattern(32, 32, seed=7), pattern(37, 90, seed=4)
    predictor = onnxruntime.InferenceSession(str(tmp_path / "arb.predictor.onnx"))
    transformer = onnxruntime.InferenceSession(str(tmp_path / "arb.transformer.onnx"))
    (embedding,) = predictor.run(None, {"image": style.numpy()})
    (stylized,) = transformer.run(None, {"image": photo.numpy(), "embedding": embedding})
    with torch.no_grad():
        assert (torch.from_numpy(stylized) - network(photo)).abs().max() < 1e-3


def test_python_api_with_an_arbitrary_checkpoint(checkpoint):
    image = nst.stylize(
        ASSETS / "images" / "content" / "chicago.jpg",
        ASSETS / "images" / "style" / "magenta_black_zigzag.jpg",
        ckpt=checkpoint,
        size=64,
        strength=0.5,
        device="cpu",
    )
    assert image.size == (64, 43) and np.asarray(image).std() > 0


def test_bad_arbitrary_inputs_exit_2_and_write_nothing(checkpoint, files, tmp_path, capsys):
    photo, first, second = files
    fast = tmp_path / "fast.ckpt"
    torch.save({"hyper_parameters": {"name": "fast"}, "state_dict": {}}, fast)
    cases = [
        ([f"style={tmp_path / 'missing.jpg'}"], "Image not found"),
        ([], "stylises with any style image: add style=PATH"),
        ([f"style=[{first},{second}]", "style_weights=[1.0]"], "2 style images but 1"),
        ([f"style={first}", "strength=2"], "strength must be between 0 and 1"),
        ([f"style={first}", f"output={photo}"], "is also an input"),
    ]
    for overrides, message in cases:
        before = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
        with pytest.raises(SystemExit) as exit_info:
            stylize(f"ckpt={checkpoint}", f"input={photo}", *overrides)
        stderr = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and message in stderr, (overrides, stderr)
        assert len(stderr.splitlines()) == 1, stderr
        after = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
        assert after == before, overrides
    from nst.errors import UserError

    with pytest.raises(UserError, match="not an arbitrary-method checkpoint"):
        load_stylizer(fast, kind="arbitrary")
