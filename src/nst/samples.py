"""Sample images that need no files of the user's: `sample:NAME` wherever an image path goes.

Photos come from scikit-image's bundled data (read as plain PNG files); styles are drawn here.
"""

import importlib.util
import math
from pathlib import Path

import torch
from torch import Tensor

from nst.errors import UserError

PHOTOS = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
}
PREFIX = "sample:"

# Stained-glass colours: saturated jewel tones.
GLASS_PALETTE = torch.tensor(
    [
        [0.80, 0.12, 0.15],
        [0.95, 0.65, 0.10],
        [0.10, 0.35, 0.75],
        [0.10, 0.55, 0.30],
        [0.55, 0.20, 0.60],
        [0.95, 0.85, 0.55],
        [0.05, 0.60, 0.70],
        [0.85, 0.40, 0.15],
    ]
)


def is_sample(name: str) -> bool:
    """True when `name` asks for a sample image (`sample:NAME`)."""
    return isinstance(name, str) and name.startswith(PREFIX)


def sample_names() -> list[str]:
    """Every `sample:NAME` on offer."""
    return [PREFIX + name for name in [*PHOTOS, *DRAWN]]


def sample_photo_path(name: str) -> Path:
    """Path of a photo bundled with scikit-image, found without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("Sample photos need scikit-image: pip install scikit-image.")
    return Path(spec.submodule_search_locations[0]) / "data" / PHOTOS[name]


def mosaic(size: int = 512, cells: int = 160, seed: int = 1) -> Tensor:
    """A stained-glass mosaic: Voronoi cells of jewel colours with dark lead lines (1×3×S×S)."""
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(cells, 2, generator=generator)
    colors = GLASS_PALETTE[torch.randint(len(GLASS_PALETTE), (cells,), generator=generator)]
    colors = (colors * (0.75 + 0.35 * torch.rand(cells, 1, generator=generator))).clamp(0, 1)
    axis = (torch.arange(size) + 0.5) / size
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    distances = torch.cdist(grid, points)
    nearest = distances.topk(2, largest=False)
    edge = (nearest.values[:, 1] - nearest.values[:, 0]) * size  # px to the cell border
    cell = colors[nearest.indices[:, 0]]
    shade = 1.0 - 0.35 * (nearest.values[:, :1] * math.sqrt(cells))  # lighter at cell centres
    lead = (edge / 3.0).clamp(0, 1).unsqueeze(1)
    image = cell * shade.clamp(0.45, 1.0) * lead + 0.06 * (1 - lead)
    return image.T.reshape(1, 3, size, size).clamp(0, 1)


def waves(size: int = 512, seed: int = 2) -> Tensor:
    """Swirling bands of ink blue, teal and foam in the manner of a woodblock print (1×3×S×S)."""
    generator = torch.Generator().manual_seed(seed)
    axis = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    phase = torch.zeros_like(x)
    for octave in range(1, 5):
        fx, fy, offset = (torch.rand(3, generator=generator) * 6.0 + 1.0) * octave
        phase += torch.sin(fx * x * math.pi + offset) * torch.cos(fy * y * math.pi) / octave
    bands = torch.sin(40 * y + 2.5 * phase + 8.0 * torch.sin(3 * x))
    crest = ((bands > 0.7) & (torch.sin(90 * x + 30 * y + 3 * phase) > -0.6)).float()
    ink = torch.tensor([0.05, 0.12, 0.35]).view(3, 1, 1)
    teal = torch.tensor([0.15, 0.45, 0.60]).view(3, 1, 1)
    foam = torch.tensor([0.93, 0.91, 0.84]).view(3, 1, 1)
    mix = ((bands + 1) / 2).unsqueeze(0)
    image = ink * (1 - mix) + teal * mix
    image = image * (1 - crest) + foam * crest
    return image.unsqueeze(0).clamp(0, 1)


DRAWN = {"mosaic": mosaic, "waves": waves}


def load_sample(name: str) -> Tensor:
    """The sample image `sample:NAME` as a 1×3×H×W tensor in [0, 1]."""
    from nst.image import load_image

    key = name.removeprefix(PREFIX)
    if key in PHOTOS:
        return load_image(sample_photo_path(key))
    if key in DRAWN:
        return DRAWN[key]()
    raise UserError(f"Unknown sample '{name}'; choose one of {', '.join(sample_names())}.")
