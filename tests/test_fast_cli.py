"""train.py and stylize.py with a checkpoint, as a user runs them."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ASSETS, ROOT, load_script, pattern, script_env, wrong_kind_checkpoints

import nst
from nst.api import compose_config
from nst.image import load_image, save_image
from nst.inference import batch_stylizer, load_stylizer

TRAIN = [
    "method=fast",
    "style=wave",
    "data=synthetic",
    "loss_net.weights=random",
    "trainer.max_steps=20",
    "logger=none",
]
stylize_script = load_script("stylize")
train_script = load_script("train")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The issue's command, verbatim, run from an empty folder: it must write last.ckpt."""
    folder = tmp_path_factory.mktemp("train")
    env = {**script_env(), "NST_STYLE_DIR": str(ASSETS / "images" / "style")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TRAIN],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (last,) = folder.glob("runs/fast_wave/*/checkpoints/last.ckpt")
    return last


def stylize(*overrides):
    stylize_script.main(compose_config("stylize", list(overrides)))


def test_train_writes_last_ckpt_and_stylize_uses_it(checkpoint, tmp_path):
    assert (checkpoint.parents[1] / ".hydra" / "config.yaml").is_file()
    network = load_stylizer(checkpoint)
    assert network.style_name == "wave" and network.hparams["loss_net"]["weights"] == "random"
    photo = save_image(pattern(45, 70, seed=3), tmp_path / "photo.png")
    before = photo.read_bytes()
    result = subprocess.run(
        [sys.executable, str(ROOT / "stylize.py"), f"ckpt={checkpoint}", f"input={photo}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=script_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    output = load_image(tmp_path / "photo_wave.png")
    assert output.shape == (1, 3, 45, 70) and photo.read_bytes() == before
    expected = batch_stylizer(network, torch.device("cpu"), "auto")(load_image(photo))
    assert (output - expected).abs().max() <= 1 / 255 + 1e-6  # only 8-bit rounding


def test_a_folder_is_stylised_in_batches(checkpoint, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(pattern(40, 60, seed=1), photos / "a.png")
    save_image(pattern(40, 60, seed=2), photos / "b.jpg")
    save_image(pattern(50, 30, seed=3), photos / "c.png")
    (photos / "notes.txt").write_text("ignored")
    stylize(f"ckpt={checkpoint}", f"input={photos}", "batch_size=2")
    outputs = tmp_path / "photos_wave"
    assert sorted(path.name for path in outputs.iterdir()) == ["a.png", "b.jpg", "c.png"]
    assert load_image(outputs / "c.png").shape == (1, 3, 50, 30)
    stylize(f"ckpt={checkpoint}", f"input={photos}", f"output={tmp_path / 'small'}", "size=32")
    assert load_image(tmp_path / "small" / "a.png").shape == (1, 3, 21, 32)


def test_a_bad_image_in_a_folder_leaves_no_output(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(pattern(40, 60, seed=1), photos / "a.png")
    (photos / "b.png").write_text("not an image")
    with pytest.raises(SystemExit) as exit_info:
        stylize(f"ckpt={checkpoint}", f"input={photos}", "batch_size=1")
    assert exit_info.value.code == 2 and "Cannot read" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photos"]


@pytest.mark.parametrize("kind, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_matches_pytorch_at_any_size(checkpoint, tmp_path, kind, suffix):
    output = tmp_path / f"wave{suffix}"
    stylize(f"ckpt={checkpoint}", f"export={kind}", f"output={output}")
    network = load_stylizer(checkpoint)
    image = pattern(37, 90, seed=4).repeat(3, 1, 1, 1)
    if kind == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        exported = torch.from_numpy(session.run(None, {"image": image.numpy()})[0])
    else:
        exported = torch.jit.load(str(output))(image)
    with torch.no_grad():
        assert (exported - network(image)).abs().max() < 1e-3
    assert sorted(path.name for path in tmp_path.iterdir()) == [output.name]  # no temp files


def test_python_api_with_a_checkpoint(checkpoint):
    image = nst.stylize(
        load_image(ASSETS / "images" / "content" / "chicago.jpg"),
        ckpt=checkpoint,
        size=96,
        device="cpu",
    )
    assert image.size == (96, 64) and np.asarray(image).std() > 0


def checkpoint_errors(checkpoint, tmp_path):
    photo = save_image(pattern(20, 20, seed=1), tmp_path / "photo.png")
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"keep me")
    # stylize.py reads an arbitrary-method checkpoint as such: without style= it asks for one.
    cases = [
        (
            [f"ckpt={tmp_path / name}", f"input={photo}"],
            "stylises with any style image" if name == "arb.ckpt" else message,
        )
        for name, message in wrong_kind_checkpoints(tmp_path)
    ]
    return cases + [
        ([f"ckpt={checkpoint}"], "No input"),
        ([f"ckpt={checkpoint}", "export=tflite"], "Unknown export"),
        ([f"ckpt={checkpoint}", "export=onnx", f"output={existing}"], "already exists"),
        ([f"input={photo}", "export=onnx"], "needs a trained network"),
        ([f"input={photo}", "method=fast"], "pass ckpt=PATH"),
        ([f"ckpt={checkpoint}", f"input={photo}", "size=4"], "at least 8 px"),
        ([f"ckpt={checkpoint}", f"input={photo}", "precision=int8"], "Unknown precision"),
        ([f"ckpt={checkpoint}", f"input={tmp_path}", f"output={tmp_path}"], "is the input folder"),
        ([f"ckpt={checkpoint}", f"input={photo}", f"output={photo}"], "is also an input"),
        ([f"ckpt={checkpoint}", f"input={photo}", f"style={photo}"], "in its own style (wave)"),
    ]


def test_every_bad_checkpoint_use_exits_2_and_writes_nothing(checkpoint, tmp_path, capsys):
    for overrides, message in checkpoint_errors(checkpoint, tmp_path):
        before = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
        with pytest.raises(SystemExit) as exit_info:
            stylize(*overrides)
        assert exit_info.value.code == 2, overrides
        stderr = capsys.readouterr().err.strip()
        assert stderr.startswith("error: ") and message in stderr, (overrides, stderr)
        assert len(stderr.splitlines()) == 1, stderr
        after = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
        assert after == before, overrides


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=basic"], "optimises a single image"),
        (["method=improved"], "method=improved optimises a single image"),
        (["method=fast"], "trains one network per style"),
        (["method=fast", "style=wave", "data=imagefolder", "data.path=/nowhere"], "Cannot load"),
        (["method=fast", "style=wave", "data=imagefolder"], "data.path needs a value"),
        (["method=fast", "style=file"], "style.name needs a value"),
        (["method=fast", "style=wave", "style_dir=/nowhere"], "set style_dir=DIR"),
        (["method=fast", "style=wave", "data=synthetic", "data.val_size=0"], "data.val_size"),
    ],
)
def test_train_bad_input_exits_2(overrides, message, capsys, tmp_path):
    # In-process there is no Hydra run folder: name the folders the run would use.
    folders = [f"trainer.default_root_dir={tmp_path}", f"checkpoint.dirpath={tmp_path}/ckpt"]
    arguments = [*overrides, "loss_net.weights=random", "logger=none", *folders]
    cfg = compose_config("train", train_script.style_overrides(arguments))
    with pytest.raises(SystemExit) as exit_info:
        train_script.main(cfg)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
