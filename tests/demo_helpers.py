"""A tiny model zoo for the demo's tests: random-weight networks, no shipped models needed."""

from pathlib import Path

import torch
from conftest import tiny_arbitrary_checkpoint


def tiny_fast_checkpoint(path: Path, style: str = "wave", seed: int = 0) -> Path:
    """A tiny fast-method checkpoint with random weights, laid out as train.py writes one."""
    from nst.networks import TransformNet

    torch.manual_seed(seed)
    settings = {"channels": 4, "residual_blocks": 1, "norm": "instance", "upsample": "nearest"}
    network = TransformNet(**settings)
    state = {f"transform.{key}": value for key, value in network.state_dict().items()}
    hparams = {"name": "fast", "network": settings, "style": {"name": style, "image": "x.jpg"}}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": 1}, path)
    return path


def build_tiny_zoo(folder: Path, fast: tuple[str, ...] = ("wave", "candy"), arbitrary=True):
    """Fill `folder` with a registry of tiny models (nst.zoo.FOLDER/REGISTRY must point there)."""
    from nst import zoo

    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(fast):
        zoo.add_model(name, tiny_fast_checkpoint(folder / f"{name}.ckpt", name, seed))
    if arbitrary:
        zoo.add_model("any", tiny_arbitrary_checkpoint(folder / "any.ckpt"))
    for checkpoint in folder.glob("*.ckpt"):
        checkpoint.unlink()
    return folder
