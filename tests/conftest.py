"""Shared fixtures: tiny images, a random-weight loss network, and paths to ../shared assets."""

import importlib
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
RATE = Fraction(24000, 1001)  # the frame rate of the synthetic test videos


def script_env() -> dict:
    """Environment for running a top-level script in a subprocess against this checkout's src/."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "ignore"}


def load_script(name: str):
    """The module behind a top-level script (stylize.py, train.py): `nst.commands.<name>`."""
    return importlib.import_module(f"nst.commands.{name}")


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


def write_video(
    path,
    frames=10,
    width=48,
    height=32,
    rate=RATE,
    audio="aac",
    pix_fmt="yuv420p",
    rotation=0,
    timestamps=None,
):
    """A synthetic clip: moving colour gradients, and a 440 Hz tone if `audio` names a codec;
    `rotation` sets the display matrix (degrees counter-clockwise, as a phone writes it) and
    `timestamps` the frames' pts (a variable frame rate)."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264" if pix_fmt == "yuv420p" else "libx264rgb", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream(audio, rate=48000, layout="mono") if audio else None
        y, x = np.mgrid[0:height, 0:width]
        for index in range(frames):
            pixels = np.stack([(x * 5 + index * 9) % 256, (y * 7) % 256, (x + y) % 256], axis=-1)
            frame = av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")
            if timestamps is not None:
                frame.pts = timestamps[index]
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            seconds = frames / float(rate)
            samples = np.sin(2 * np.pi * 440 * np.arange(int(48000 * seconds)) / 48000)
            for start in range(0, len(samples), 1024):
                chunk = (samples[start : start + 1024] * 0.5).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels, with one tiny compressed row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def write_audio_only(path: Path) -> Path:
    """An MP4 holding one second of silence and no video stream."""
    import av

    with av.open(str(path), "w") as container:
        sound = container.add_stream("aac", rate=48000, layout="mono")
        chunk = np.zeros((1, 1024), np.float32)
        for start in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return path


def write_pil(path: Path, image: Image.Image, **save_options) -> Path:
    image.save(path, **save_options)
    return path


def wrong_kind_checkpoints(tmp_path):
    """(file, message) pairs: each must fail in one clear sentence."""
    from omegaconf import OmegaConf

    state = {"conv1_1.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "vgg.pth")
    torch.save({"hyper_parameters": {"name": "arbitrary"}, "state_dict": {}}, tmp_path / "arb.ckpt")
    torch.save({"hyper_parameters": OmegaConf.create({"name": "fast"})}, tmp_path / "pickled.ckpt")
    (tmp_path / "truncated.ckpt").write_bytes((tmp_path / "arb.ckpt").read_bytes()[:300])
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    return [
        ("vgg.pth", "is not a fast-method checkpoint (it holds no trained transform network)"),
        ("arb.ckpt", "is not a fast-method checkpoint (it was trained by method=arbitrary)"),
        ("pickled.ckpt", "holds pickled Python objects"),
        ("truncated.ckpt", "damaged or truncated"),
        ("photo.jpg", "is not a PyTorch checkpoint file"),
        ("empty.ckpt", "is not a PyTorch checkpoint file"),
        ("missing.ckpt", "Checkpoint not found"),
    ]


def tiny_fast_checkpoint(path: Path, style: str = "wave", seed: int = 0) -> Path:
    """A tiny fast-method checkpoint with random weights, laid out as train.py writes one."""
    from nst.networks import TransformNet

    torch.manual_seed(seed)
    settings = {"channels": 4, "residual_blocks": 1, "norm": "instance", "upsample": "nearest"}
    network = TransformNet(**settings)
    hparams = {
        "name": "fast",
        "network": settings,
        "style": {"name": style, "image": f"{style}.jpg"},
    }
    state = {f"transform.{key}": value for key, value in network.state_dict().items()}
    torch.save({"hyper_parameters": hparams, "state_dict": state}, path)
    return path


@pytest.fixture
def tiny_zoo(tmp_path_factory, monkeypatch) -> list[str]:
    """A model zoo in a temporary folder with two tiny fast models, `wave` and `candy`."""
    from nst import zoo

    folder = tmp_path_factory.mktemp("zoo")
    monkeypatch.setattr(zoo, "FOLDER", folder)
    monkeypatch.setattr(zoo, "REGISTRY", folder / "registry.json")
    for seed, name in enumerate(["wave", "candy"]):
        zoo.add_model(name, tiny_fast_checkpoint(folder / f"{name}.ckpt", name, seed))
    return zoo.names()


def tiny_arbitrary_checkpoint(path: Path, embedding: int = 8) -> Path:
    """A tiny arbitrary-method checkpoint with random weights, laid out as train.py writes one."""
    from nst.networks import ConditionalTransformNet
    from nst.predictors import VGGPredictor
    from nst.vgg import LossNetwork

    torch.manual_seed(0)
    predictor_settings = {
        "backbone": "vgg",
        "layers": ["relu1_2", "relu2_2"],
        "hidden": 16,
        "embedding_size": embedding,
        "pretrained": False,
    }
    network_settings = {"channels": 4, "residual_blocks": 1, "encoder_norm": "instance"}
    predictor = VGGPredictor(
        LossNetwork("vgg16", "random"), predictor_settings["layers"], embedding, hidden=16
    )
    transform = ConditionalTransformNet(**network_settings, embedding_size=embedding)
    with torch.no_grad():  # strong style slopes, so different embeddings give different images
        transform.style_params.weight.normal_(0.0, 1.0)
    state = {f"predictor.{key}": value for key, value in predictor.state_dict().items()}
    state |= {f"transform.{key}": value for key, value in transform.state_dict().items()}
    hparams = {
        "name": "arbitrary",
        "loss_net": {"arch": "vgg16", "weights": "random"},
        "pooling": "avg",
        "predictor": predictor_settings,
        "network": network_settings,
    }
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return path
