"""The model zoo: the shipped files, the registry, warm starts and the package build."""

import json
import subprocess
import sys
import zipfile

import pytest
import torch
from conftest import ASSETS, ROOT, pattern, script_env

from nst import zoo
from nst.errors import UserError
from nst.image import load_image
from nst.inference import load_stylizer
from nst.samples import load_sample

SHIPPED = zoo.names()
FAST = [name for name in SHIPPED if zoo.registry()[name]["method"] == "fast"]
STYLES = ROOT / "conf" / "styles"


def test_the_zoo_ships_its_models():
    assert len(FAST) >= 8 and "arbitrary" in SHIPPED
    for name in FAST:
        assert (STYLES / f"{name}.yaml").is_file(), f"{name} has no conf/styles entry"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_entry_exists_matches_its_sha256_and_loads(name):
    entry = zoo.registry()[name]
    path = zoo.FOLDER / entry["file"]
    assert path.suffix == ".safetensors" and zoo.sha256(path) == entry["sha256"]
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    checkpoint = zoo.read_model(name)
    assert all(value.dtype == torch.float32 for value in checkpoint["state_dict"].values())
    if name in FAST:
        assert checkpoint["hyper_parameters"]["style"]["name"] == name
        assert load_stylizer(name).style_name == name
    else:
        assert load_stylizer(name).takes_styles
        assert {"mean", "cholesky"} <= checkpoint["style_distribution"].keys()


def test_the_arbitrary_model_moves_toward_the_style_with_strength():
    """Strength 0 stays close to the photo, strength 1 moves toward the painting (issue 11's
    check, with the evaluator), and two paintings give two different pictures."""
    from nst.evaluate import StyleEvaluator

    photo = torch.nn.functional.interpolate(load_sample("chelsea"), size=(192, 256), mode="area")
    paintings = [load_sample("mosaic"), load_sample("waves")]  # drawn styles, bundled
    evaluator = StyleEvaluator()
    outputs, scores = {}, {}
    with torch.no_grad():
        for index, painting in enumerate(paintings):
            for strength in (0.0, 1.0):
                stylizer = load_stylizer("arbitrary", [painting], strength=strength)
                outputs[index, strength] = stylizer(photo).clamp(0, 1)
                scores[index, strength] = evaluator(outputs[index, strength], photo, painting)
    for index in range(len(paintings)):
        assert scores[index, 0.0]["content"] < scores[index, 1.0]["content"]
        assert scores[index, 1.0]["style"] < scores[index, 0.0]["style"]
    assert (outputs[0, 1.0] - outputs[1, 1.0]).abs().mean() > 0.05  # not one look for all


def test_each_model_changes_a_photo_in_its_own_way():
    photo = torch.nn.functional.interpolate(load_sample("chelsea"), size=(48, 64), mode="area")
    outputs = {}
    with torch.no_grad():
        for name in FAST:
            output = load_stylizer(name)(photo)
            assert output.shape == photo.shape
            assert (output - photo).abs().mean() > 0.03, f"{name} leaves the photo unchanged"
            outputs[name] = output
    teachers = {name: zoo.registry()[name].get("teacher") for name in FAST}
    for first in FAST:
        for second in FAST:
            if first < second and second != teachers[first] and first != teachers[second]:
                difference = (outputs[first] - outputs[second]).abs().mean()
                assert difference > 0.02, f"{first} and {second} stylise alike"
    for name, teacher in teachers.items():  # a small variant reproduces its teacher's picture
        if teacher:
            assert (outputs[name] - outputs[teacher]).abs().mean() < 0.05, name


def test_an_unknown_model_name_lists_the_zoo():
    with pytest.raises(UserError, match="Unknown model 'no_such_style'") as error:
        zoo.model_path("no_such_style")
    assert all(name in str(error.value) for name in SHIPPED)


def test_a_damaged_zoo_file_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "FOLDER", tmp_path)
    monkeypatch.setattr(zoo, "REGISTRY", tmp_path / "registry.json")
    (tmp_path / "broken.safetensors").write_bytes(b"not a model")
    entry = {"file": "broken.safetensors", "sha256": "0" * 64, "method": "fast"}
    (tmp_path / "registry.json").write_text(json.dumps({"broken": entry}))
    with pytest.raises(UserError, match="missing or damaged; reinstall nst"):
        zoo.read_model("broken")


def test_add_model_keeps_the_network_alone_in_fp16(tmp_path, monkeypatch):
    from nst.networks import TransformNet

    network = TransformNet(channels=4, residual_blocks=1)
    hparams = {
        "name": "fast",
        "network": {"channels": 4, "residual_blocks": 1},
        "style": {"name": "tiny", "image": "/some/where/tiny.jpg", "size": 64},
    }
    state = {f"transform.{key}": value for key, value in network.state_dict().items()}
    checkpoint = tmp_path / "tiny.ckpt"
    torch.save(
        {
            "state_dict": state,
            "hyper_parameters": hparams,
            "global_step": 7,
            "optimizer_states": [{"big": torch.zeros(10)}],
        },
        checkpoint,
    )
    monkeypatch.setattr(zoo, "FOLDER", tmp_path)
    monkeypatch.setattr(zoo, "REGISTRY", tmp_path / "registry.json")
    entry = zoo.add_model("tiny", checkpoint)
    assert entry["steps"] == 7 and entry["style"] == "tiny.jpg"
    read = zoo.read_model("tiny")
    assert read["hyper_parameters"]["style"]["image"] == "tiny.jpg"
    assert set(read["state_dict"]) == set(state)
    for key, value in state.items():
        assert torch.allclose(read["state_dict"][key], value, atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_a_warm_start_from_a_zoo_model_trains_a_checkpoint_stylize_uses(tmp_path):
    name = FAST[0]
    env = {**script_env(), "NST_STYLE_DIR": str(ASSETS / "images" / "style")}
    train = [
        sys.executable,
        str(ROOT / "train.py"),
        "method=fast",
        f"style={ASSETS}/images/style/mosaic.jpg",
        f"init_from={name}",
        "data=synthetic",
        "loss_net.weights=random",
        "trainer.max_steps=5",
        "logger=none",
        f"hydra.run.dir={tmp_path}/run",
    ]
    result = subprocess.run(train, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Starting from the weights of {name}" in result.stdout
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    trained = torch.load(checkpoint, weights_only=True)["state_dict"]
    shipped = zoo.read_model(name)["state_dict"]
    moved = [(trained[key] - shipped[key]).abs().max() for key in shipped]
    assert max(moved) > 0 and max(moved) < 0.1  # trained on, but from the zoo's weights
    photo = tmp_path / "photo.png"
    from nst.image import save_image

    save_image(pattern(40, 56, seed=4), photo)
    stylize = [
        sys.executable,
        str(ROOT / "stylize.py"),
        f"ckpt={checkpoint}",
        f"input={photo}",
        f"output={tmp_path / 'out.png'}",
    ]
    result = subprocess.run(stylize, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_image(tmp_path / "out.png").shape == (1, 3, 40, 56)


@pytest.mark.slow
def test_the_wheel_carries_the_zoo(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("nst-*.whl")
    files = set(zipfile.ZipFile(wheel).namelist())
    assert "nst/zoo/registry.json" in files
    for entry in zoo.registry().values():
        assert f"nst/zoo/{entry['file']}" in files


def test_style_augment_with_no_arguments_works_in_a_two_worker_dataloader():
    from torch.utils.data import DataLoader, TensorDataset

    from nst.augment import StyleAugment

    augment = StyleAugment(seed=0)
    photos = torch.nn.functional.interpolate(load_sample("chelsea"), size=(48, 64), mode="area")
    dataset = TensorDataset(photos.repeat(4, 1, 1, 1))
    loader = DataLoader(
        dataset,
        batch_size=2,
        num_workers=2,
        collate_fn=lambda items: augment(torch.stack([item[0] for item in items])),
    )
    batches = list(loader)
    assert [batch.shape for batch in batches] == [(2, 3, 48, 64)] * 2
    assert all((batch - photos).abs().mean() > 0.02 for batch in batches)
    assert not torch.allclose(batches[0][0], batches[0][1])  # each image its own random style
