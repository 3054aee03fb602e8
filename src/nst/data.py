"""Content photos for training feed-forward networks: a LightningDataModule over HF `datasets`.

`path` is anything `datasets.load_dataset` reads: a Hugging Face hub id (`detection-datasets/coco`)
or a local folder of images (COCO's `train2014/`, `../shared/assets/datasets/content_bsds500`).
`synthetic=N` generates N images instead, for tests. Training images are resized (short side
`size`), randomly cropped to `crop` and randomly flipped; a few held-out images, centre-cropped
(or whole, at long side `val_size`), make the validation batches. Methods that train on style
sets (method=arbitrary) use `nst.style_data.PairedDataModule`, this module with styles paired in.
"""

import os
import signal

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from nst.errors import UserError
from nst.image_sets import (
    ImageSet,
    centre_crops,
    image_column,
    load_images,
    random_crops,
    shrink,
    synthetic_images,
    whole_photos,
)

MAX_AUTO_WORKERS = 8


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
        self.train_set = self.val_set = None  # `style` is for PairedDataModule; unused here

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
        self.train_set = ImageSet(train, random_crops(self.size, self.crop, self.flip), column)
        self.val_set = ImageSet(val, self.val_transform(), column)

    def val_transform(self) -> v2.Transform:
        """Centre crops as in training, or with `val_size` the whole photos at that long side."""
        if self.val_size is not None:
            return whole_photos(self.val_size)
        return centre_crops(self.size, self.crop)

    @staticmethod
    def worker_init(worker_id: int) -> None:
        """DataLoader workers leave SIGTERM to the main process: a scheduler (SLURM, `pkill -f`)
        signals every process of the job, and a worker killed under the main process would turn
        its clean stop (`nst.training.StopOnSigterm`) into a traceback. Then the seeding that
        Lightning's `seed_everything(workers=True)` would add."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if int(os.environ.get("PL_SEED_WORKERS", 0)):
            pl_worker_init_function(worker_id)

    def loader(
        self, dataset: Dataset, shuffle: bool, batch_size: int | None, collate=None
    ) -> DataLoader:
        """A DataLoader with this module's workers (kept alive between epochs) and pinned memory."""
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
        batch_size = 1 if self.val_size else max(1, self.val_images)  # whole photos differ in shape
        return self.loader(self.val_set, shuffle=False, batch_size=batch_size)
