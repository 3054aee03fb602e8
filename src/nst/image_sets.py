"""Images as datasets, for every data module (`nst.data`, `nst.style_data`): reading a local
folder or a Hugging Face hub set (offline known in seconds), generated images for tests, the
one dataset class (an HF image column through a torchvision transform) and the transforms the
photos and styles share.
"""

import io
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

import datasets
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from nst.errors import UserError
from nst.image import resize_long_side, to_pil, to_rgb

HUB_TIMEOUT_S = 3  # offline is known within this, instead of after about a minute of retries
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def synthetic_images(count: int, size: int, seed: int = 0) -> datasets.Dataset:
    """`count` generated photos (size × 4/3·size): colour gradients with a few hard-edged boxes."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size, size * 4 // 3
    images = []
    for _ in range(count):
        coarse = torch.rand(1, 3, 3, 4, generator=generator)
        image = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
        for _ in range(3):
            top, left = torch.randint(0, height // 2, (2,), generator=generator)
            box_height, box_width = torch.randint(
                height // 8, height // 2, (2,), generator=generator
            )
            color = torch.rand(3, 1, 1, generator=generator)
            image[0, :, top : top + box_height, left : left + box_width] = color
        images.append(to_pil(image.clamp(0, 1)))
    features = datasets.Features({"image": datasets.Image()})
    return datasets.Dataset.from_dict({"image": images}, features=features)


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub's host answers a TCP connection within `timeout` seconds."""
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def go_offline() -> None:
    """Hugging Face offline mode for the rest of this process: cached datasets only."""
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True


@contextmanager
def quiet_progress(quiet: bool) -> Iterator[None]:
    """Hugging Face's progress bars off within the block when `quiet`."""
    from datasets.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    if quiet:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was_enabled:
            logging.enable_progress_bar()


def load_images(path: str, split: str, files: list[str] | None, cache_dir: str | None):
    """The images of a hub dataset id or a local folder; `files` are glob patterns inside it."""
    local = Path(path).expanduser()
    if local.is_file():
        raise UserError(f"data.path {path} is a file; give a folder of images or a hub dataset id.")
    offline = not local.is_dir() and not hub_reachable()
    if offline:
        go_offline()  # the cache or a quick error, not a minute of retries
    try:
        with quiet_progress(local.is_dir()):  # no "Downloading data" bars for a local folder
            return datasets.load_dataset(
                str(local) if local.is_dir() else path,
                data_files=list(files) if files else None,
                split=split,
                cache_dir=cache_dir,
            )
    except Exception as error:
        reason = str(error).splitlines()[0].rstrip(".") if str(error) else type(error).__name__
        if offline:
            reason = "the Hugging Face hub cannot be reached and it is not in the local cache"
        raise UserError(
            f"Cannot load training images from data.path={path} ({reason}); give a folder of "
            "images (data=imagefolder data.path=DIR) or a Hugging Face dataset id."
        ) from None


def image_column(dataset: datasets.Dataset) -> str:
    """The name of the dataset's first image column."""
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    raise UserError(f"The training dataset has no image column (columns: {dataset.column_names}).")


def shrink(example: dict, column: str, size: int, quality: int = 95) -> dict:
    """One example with its image's short side reduced to `size`, stored as a JPEG."""
    image = to_rgb(example[column])
    scale = size / min(image.size)
    if scale < 1:
        new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(new_size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return {column: {"bytes": buffer.getvalue(), "path": None}}


def folder_images(folders: list[Path]) -> datasets.Dataset:
    """Every image under `folders` (each sorted, recursive) with its name, as an HF dataset.

    With one folder a name is the file's path inside it; with several it starts with the
    folder's own name (`paintings_pacs_art/dog_pic_001.jpg`), so names stay unique."""
    paths, names = [], []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise UserError(f"{folder} holds no images; give a folder of .jpg or .png paintings.")
        root = folder if len(folders) == 1 else folder.parent
        paths += [str(path) for path in found]
        names += [str(path.relative_to(root)) for path in found]
    dataset = datasets.Dataset.from_dict({"image": paths, "name": names})
    return dataset.cast_column("image", datasets.Image())


class ImageSet(Dataset):
    """An HF image dataset (its `column`) as RGB float tensors through a torchvision transform."""

    def __init__(self, dataset: datasets.Dataset, transform: v2.Transform, column: str = "image"):
        self.dataset, self.transform, self.column = dataset, transform, column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tensor:
        return self.transform(to_rgb(self.dataset[index][self.column]))


def random_crops(size: int, crop: int, flip: bool = True) -> v2.Transform:
    """Resize (short side), random crop, random horizontal flip, float [0, 1]."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(size, antialias=True),
            v2.RandomCrop(crop),
            v2.RandomHorizontalFlip(0.5 if flip else 0.0),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def centre_crops(size: int, crop: int) -> v2.Transform:
    """Resize (short side), centre crop, float [0, 1]: validation photos, the grid's styles."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(size, antialias=True),
            v2.CenterCrop(crop),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def whole_photo(image: Tensor, size: int) -> Tensor:
    """A 3×H×W photo resized to long side `size`: validation at the evaluator's scale."""
    return resize_long_side(image[None], size)[0]


def whole_photos(size: int) -> v2.Transform:
    """Whole images at long side `size`, float [0, 1]: validation at the evaluator's scale."""
    return v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), partial(whole_photo, size=size)]
    )
