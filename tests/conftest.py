"""Shared fixtures: tiny images, a random-weight loss network, and paths to ../shared assets."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"


def script_env() -> dict:
    """Environment for running a top-level script in a subprocess against this checkout's src/."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "ignore"}


def load_script(name: str):
    """Import a top-level script (stylize.py, train.py) as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pattern(height: int, width: int, seed: int) -> torch.Tensor:
    """A smooth random colour image, 1×3×H×W in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")


@pytest.fixture
def content_image() -> torch.Tensor:
    return pattern(40, 48, seed=1)


@pytest.fixture
def style_image() -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    return torch.rand(1, 3, 36, 36, generator=generator)


@pytest.fixture
def image_files(tmp_path, content_image, style_image) -> tuple[Path, Path]:
    """A content and a style PNG on disk."""
    from nst.image import save_image

    content, style = tmp_path / "content.png", tmp_path / "style.png"
    save_image(content_image, content)
    save_image(style_image, style)
    return content, style


@pytest.fixture(scope="session")
def random_vgg19():
    from nst.vgg import LossNetwork

    return LossNetwork("vgg19", "random")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, so `auto` weights must fall back without touching a real cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def write_pil(path: Path, image: Image.Image, **save_options) -> Path:
    image.save(path, **save_options)
    return path


def tiny_arbitrary_checkpoint(path: Path, embedding: int = 8) -> Path:
    """A tiny arbitrary-method checkpoint with random weights, laid out as train.py writes one."""
    from nst.networks import ConditionalTransformNet
    from nst.predictors import VGGPredictor
    from nst.vgg import LossNetwork

    torch.manual_seed(0)
    predictor_settings = {"backbone": "vgg", "layers": ["relu1_2", "relu2_2"], "hidden": 16,
                          "embedding_size": embedding, "pretrained": False}  # fmt: skip
    network_settings = {"channels": 4, "residual_blocks": 1, "encoder_norm": "instance"}
    predictor = VGGPredictor(LossNetwork("vgg16", "random"), predictor_settings["layers"],
                             embedding, hidden=16)  # fmt: skip
    transform = ConditionalTransformNet(**network_settings, embedding_size=embedding)
    with torch.no_grad():  # strong style slopes, so different embeddings give different images
        transform.style_params.weight.normal_(0.0, 1.0)
    state = {f"predictor.{key}": value for key, value in predictor.state_dict().items()}
    state |= {f"transform.{key}": value for key, value in transform.state_dict().items()}
    hparams = {"name": "arbitrary", "loss_net": {"arch": "vgg16", "weights": "random"},
               "pooling": "avg", "predictor": predictor_settings,
               "network": network_settings}  # fmt: skip
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return path
