"""Content photos for training feed-forward networks: a LightningDataModule over HF `datasets`.

`path` is anything `datasets.load_dataset` reads: a Hugging Face hub id (`detection-datasets/coco`)
or a local folder of images (COCO's `train2014/`, `../shared/assets/datasets/content_bsds500`).
`synthetic=N` generates N images instead, for tests. Training images are resized (short side
`size`), randomly cropped to `crop` and randomly flipped; a few held-out images, centre-cropped,
make the validation batch.

With `pair_styles` (set by methods that train on style sets: method=arbitrary) training batches
are (content, style) pairs drawn with the style set `style` (`nst.style_data.StyleSet` options),
and the validation batch is (content photos, the grid's styles, how many of them are seen).
"""

import io
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

import datasets
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from nst.errors import UserError
from nst.image import resize_long_side, to_pil, to_rgb

MAX_AUTO_WORKERS = 8
HUB_TIMEOUT_S = 3  # offline is known within this, instead of after about a minute of retries


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


def whole_photo(image: Tensor, size: int) -> Tensor:
    """A 3×H×W photo resized to long side `size`: validation at the evaluator's scale."""
    return resize_long_side(image[None], size)[0]


class ContentImages(Dataset):
    """An HF image dataset as RGB float tensors through a torchvision transform."""

    def __init__(self, dataset: datasets.Dataset, column: str, transform: v2.Transform):
        self.dataset, self.column, self.transform = dataset, column, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tensor:
        return self.transform(to_rgb(self.dataset[index][self.column]))


def worker_count(workers: int | str) -> int:
    """`auto`: one loader worker per CPU core, at most 8; otherwise the number given."""
    if workers == "auto":
        return min(MAX_AUTO_WORKERS, os.cpu_count() or 1)
    if not isinstance(workers, int) or workers < 0:
        raise UserError(f"data.workers must be auto or a non-negative integer, got {workers}.")
    return workers


class ContentDataModule(pl.LightningDataModule):
    """Training and validation batches of content photos, N×3×crop×crop in [0, 1]."""

    def __init__(
        self,
        path: str | None = None,
        split: str = "train",
        files: list[str] | None = None,
        synthetic: int = 0,
        size: int = 256,
        crop: int = 256,
        flip: bool = True,
        batch_size: int = 4,
        workers: int | str = "auto",
        val_images: int = 4,
        val_size: int | None = None,
        preprocess: bool = False,
        cache_dir: str | None = None,
        seed: int = 0,
        style: dict | None = None,
        pair_styles: bool = False,
    ):
        super().__init__()
        if synthetic <= 0 and not path:
            raise UserError(
                "No training images: set data.path=DIR (or a hub id), or data=synthetic."
            )
        for name, value in (("size", size), ("crop", crop), ("batch_size", batch_size)):
            if not isinstance(value, int) or value <= 0:
                raise UserError(f"data.{name} must be a positive integer, got {value}.")
        if val_size is not None and (not isinstance(val_size, int) or val_size <= 0):
            raise UserError(f"data.val_size must be null or a positive integer, got {val_size}.")
        if crop > size:
            raise UserError(f"data.crop ({crop}) must not exceed data.size ({size}).")
        self.path, self.split, self.files, self.synthetic = path, split, files, synthetic
        self.size, self.crop, self.flip, self.batch_size = size, crop, flip, batch_size
        self.workers, self.val_images = worker_count(workers), val_images
        self.val_size = val_size
        self.preprocess, self.cache_dir, self.seed = preprocess, cache_dir, seed
        self.train_set = self.val_set = None
        self.styles = None
        if pair_styles:
            from nst.style_data import StyleSet

            self.styles = StyleSet(**(style or {}), seed=seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.synthetic > 0:
            dataset = synthetic_images(self.synthetic, self.size + self.size // 4, self.seed)
        else:
            dataset = load_images(self.path, self.split, self.files, self.cache_dir)
        column = image_column(dataset)
        if len(dataset) <= self.val_images:
            raise UserError(
                f"data.path={self.path} has {len(dataset)} images; training needs more than "
                f"data.val_images={self.val_images}."
            )
        train, val = dataset, dataset.select([])
        if self.val_images:
            halves = dataset.train_test_split(test_size=self.val_images, seed=self.seed)
            train, val = halves["train"], halves["test"]
        if self.preprocess:  # the training photos only: validation may want them larger
            train = train.map(
                shrink,
                fn_kwargs={"column": column, "size": self.size},
                num_proc=self.workers or None,
                desc=f"Resizing to {self.size} px (once; cached)",
            )
        self.train_set = ContentImages(train, column, self.train_transform())
        self.val_set = ContentImages(val, column, self.val_transform())
        if self.styles is not None:
            self.pair_with_styles()

    def pair_with_styles(self) -> None:
        """Training pairs (content, random style); the validation batch with the grid's styles."""
        from nst.style_data import HOLDOUT_FILE, PairedImages, StyleImages

        styles, held = self.styles.load(self.workers)
        self.train_set = PairedImages(
            self.train_set, StyleImages(styles, self.styles.train_transform())
        )
        grid, seen = self.styles.grid(styles, held)
        content = [self.val_set[i] for i in range(len(self.val_set))]
        batches = [torch.stack(content)] if self.val_size is None else [p[None] for p in content]
        self.val_set = [(photos, grid, seen) for photos in batches] if content else []
        if self.trainer is not None and held.num_rows:
            folder = Path(self.trainer.default_root_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / HOLDOUT_FILE).write_text("".join(f"{name}\n" for name in held["name"]))

    def train_transform(self) -> v2.Transform:
        """Resize (short side), random crop, random horizontal flip, float [0, 1]."""
        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(self.size, antialias=True),
                v2.RandomCrop(self.crop),
                v2.RandomHorizontalFlip(0.5 if self.flip else 0.0),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def val_transform(self) -> v2.Transform:
        """Resize (short side), centre crop, float [0, 1]; or with `val_size`, the whole photo
        at that long side."""
        if self.val_size is not None:
            to_size = partial(whole_photo, size=self.val_size)
            return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), to_size])
        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(self.size, antialias=True),
                v2.CenterCrop(self.crop),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    @staticmethod
    def worker_init(worker_id: int) -> None:
        """DataLoader workers leave SIGTERM to the main process: a scheduler (SLURM, `pkill -f`)
        signals every process of the job, and a worker killed under the main process would turn
        its clean stop (`nst.training.StopOnSigterm`) into a traceback. Then the seeding that
        Lightning's `seed_everything(workers=True)` would add."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if int(os.environ.get("PL_SEED_WORKERS", 0)):
            pl_worker_init_function(worker_id)

    def loader(self, dataset: Dataset, shuffle: bool, batch_size: int | None) -> DataLoader:
        """A DataLoader with this module's workers (kept alive between epochs) and pinned memory."""
        collate = None
        if self.styles is not None and shuffle:
            from nst.style_data import RandomStyleSize

            collate = RandomStyleSize(self.styles.random_size)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            collate_fn=collate,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.workers,
            worker_init_fn=self.worker_init,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_set, shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        if self.styles is not None:  # one ready-made batch
            return DataLoader(self.val_set, batch_size=None)
        batch_size = 1 if self.val_size else max(1, self.val_images)  # whole photos differ in shape
        return self.loader(self.val_set, shuffle=False, batch_size=batch_size)
