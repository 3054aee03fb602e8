"""The model zoo: fast-method (and arbitrary-method) networks that nst trained and ships.

Each model is one safetensors file in this folder (weights only, no pickle; fp16 on disk) whose
metadata holds the `hyper_parameters` needed to rebuild its network as JSON, and one entry in
`registry.json` with the file's sha256. `read_model(name)` returns the same dict shape that
`torch.load` gives for a train.py checkpoint (`state_dict` + `hyper_parameters`), so everything
that takes a checkpoint takes a zoo model. How each model was trained: docs/MODELS.md.

    python -m nst.zoo add NAME path/to/last.ckpt      (maintainers: convert and register)

An arbitrary-method model also carries the style distribution `StyleAugment` draws from (μ and
the Cholesky factor of Σ of its predictor's embeddings of the training paintings, Jackson et al.
2019 §3), as fp32 tensors named `style_distribution.mean` and `style_distribution.cholesky`.
"""

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from nst.errors import UserError
from nst.outputs import atomic_file

FOLDER = Path(__file__).parent
REGISTRY = FOLDER / "registry.json"
NETWORK_PREFIXES = ("transform.", "predictor.")  # the trained parts of a method's state_dict
DISTRIBUTION_PREFIX = "style_distribution."
FP32_PART = ".standardize."  # the predictor's input statistics stay fp32 (fp16 rounds a mean of
#                              about 5 by 0.002, a visible shift where its std is small)


def registry() -> dict[str, dict]:
    """The registry: {name: {file, sha256, method, style, description}}, in name order."""
    return json.loads(REGISTRY.read_text()) if REGISTRY.is_file() else {}


def names() -> list[str]:
    """The names of the shipped models."""
    return list(registry())


def sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_path(name: str) -> Path:
    """The file of zoo model `name`; an unknown name is a UserError that lists the names."""
    entry = registry().get(name)
    if entry is None:
        raise UserError(f"Unknown model '{name}'; the zoo has: {', '.join(names()) or 'none'}.")
    return FOLDER / entry["file"]


def read_model(name: str) -> dict:
    """Zoo model `name` as a checkpoint dict: {'state_dict': fp32 tensors, 'hyper_parameters'}.

    The file's sha256 is checked against the registry first, so a damaged install fails in one
    sentence instead of stylising with broken weights.
    """
    path = model_path(name)
    if not path.is_file() or sha256(path) != registry()[name]["sha256"]:
        raise UserError(
            f"The zoo file of model '{name}' ({path.name}) is missing or damaged; reinstall nst."
        )
    try:
        with safe_open(path, framework="pt") as file:
            tensors = {key: file.get_tensor(key).float() for key in file.keys()}  # noqa: SIM118
            hparams = json.loads(file.metadata()["hyper_parameters"])
    except (SafetensorError, KeyError, ValueError):
        raise UserError(f"Cannot read zoo model '{name}' ({path.name}); reinstall nst.") from None
    model = {"state_dict": {}, "hyper_parameters": hparams}
    distribution = {}
    for key, value in tensors.items():
        if key.startswith(DISTRIBUTION_PREFIX):
            distribution[key.removeprefix(DISTRIBUTION_PREFIX)] = value
        else:
            model["state_dict"][key] = value
    if distribution:
        model["style_distribution"] = distribution
    return model


def add_model(
    name: str,
    checkpoint_path: str | Path,
    dtype: torch.dtype = torch.float16,
    distribution: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Convert a train.py checkpoint into zoo model `name` (weights in `dtype`) and register it.

    Only the trained networks are kept (no optimiser state, no VGG); the style image's path is cut
    to its file name, since the model card says where each image came from. `distribution`
    (`nst.augment.fit_distribution`'s mean and cholesky) is stored beside an arbitrary network.
    """
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    hparams = dict(checkpoint["hyper_parameters"])
    if hparams.get("style"):
        style = dict(hparams["style"])
        images = style["image"]
        style["image"] = (
            Path(images).name if isinstance(images, str) else [Path(p).name for p in images]
        )
        hparams["style"] = style
    state = {
        key: value.to(torch.float32 if FP32_PART in key else dtype).contiguous()
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(NETWORK_PREFIXES) and (value.is_floating_point() or FP32_PART in key)
    }
    for key in ("mean", "cholesky"):
        if distribution is not None:
            state[DISTRIBUTION_PREFIX + key] = distribution[key].float().contiguous()
    path = FOLDER / f"{name}.safetensors"
    with atomic_file(path) as temporary:
        save_file(state, temporary, metadata={"hyper_parameters": json.dumps(hparams)})
    entries = registry()
    entries[name] = {
        "file": path.name,
        "sha256": sha256(path),
        "method": hparams["name"],
        "style": hparams.get("style", {}).get("image"),
        "steps": int(checkpoint.get("global_step", 0)),
    }
    if hparams.get("teacher"):  # a distilled small variant: the model it reproduces
        entries[name]["teacher"] = hparams["teacher"]
    with atomic_file(REGISTRY) as temporary:
        temporary.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")
    return entries[name]
