"""Style images for training the arbitrary method: a painting/texture set, augmented as the paper
does, some held out, paired with content photos (Ghiasi et al. 2017, §4 and the authors' code).

`path` is a local folder of images (the Kaggle Painter by Numbers `train/` folder, DTD's
`images/`, any folder) or a Hugging Face hub id; `synthetic=N` generates N images for tests.
`holdout` (a count, or a list of file names) keeps styles out of training so the validation grid
and `benchmarks/arbitrary_quality.py` can show unseen ones.
"""

from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from nst.data import ContentDataModule
from nst.errors import UserError
from nst.image import to_rgb
from nst.image_sets import (
    ImageSet,
    centre_crops,
    folder_images,
    image_column,
    load_images,
    shrink,
    synthetic_images,
)

HOLDOUT_FILE = "styles_holdout.txt"


def style_augmentation(size: int, crop: int) -> v2.Transform:
    """The authors' style augmentation (magenta `image_utils.py`): random resize and crop,
    horizontal and vertical flips, brightness, saturation and hue jitter.

    Their brightness is additive (±0.8); torchvision's is a factor in [0.2, 1.8], the closest
    multiplicative equivalent. Saturation 0.5–1.5 and hue ±0.2 are theirs.
    """
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(size, antialias=True),
            v2.RandomResizedCrop(crop, scale=(0.25, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.ColorJitter(brightness=0.8, saturation=(0.5, 1.5), hue=0.2),
        ]
    )


def holdout_indices(names: list[str], holdout: int | str | list[str], seed: int) -> list[int]:
    """Indices of the held-out styles: `holdout` seeded random ones; those named (file name or
    stem); or a fixed half of one folder, `FOLDER/even` (or `FOLDER/odd`): of the styles whose
    names start with `FOLDER/`, in name order, those at even (odd) positions 0, 2, 4, …"""
    if isinstance(holdout, str):
        return half_of_folder(names, holdout)
    if isinstance(holdout, int):
        if not 0 <= holdout < len(names):
            raise UserError(
                f"data.style.holdout={holdout} must be between 0 and the {len(names)} styles − 1."
            )
        order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed))
        return sorted(order[:holdout].tolist())
    index = {}
    for position, name in enumerate(names):
        index.setdefault(name, position)
        index.setdefault(Path(name).stem, position)
    missing = [name for name in holdout if str(name) not in index]
    if missing:
        raise UserError(f"data.style.holdout names {missing[0]}, which is not in the style set.")
    return sorted({index[str(name)] for name in holdout})


def half_of_folder(names: list[str], rule: str) -> list[int]:
    """Indices of `FOLDER/even` or `FOLDER/odd` (see `holdout_indices`)."""
    folder, _, parity = rule.rpartition("/")
    if parity not in ("even", "odd") or not folder:
        raise UserError(
            f"data.style.holdout={rule} must be a count, a list of names, or FOLDER/even or "
            "FOLDER/odd (a fixed half of one style folder)."
        )
    inside = sorted(
        (name, index) for index, name in enumerate(names) if name.startswith(folder + "/")
    )
    if not inside:
        raise UserError(f"data.style.holdout={rule}: no style is in a folder named {folder}.")
    start = 0 if parity == "even" else 1
    return sorted(index for _, index in inside[start::2])


class PairedImages(Dataset):
    """Each content photo with a random style image (each draw independent)."""

    def __init__(self, content: Dataset, styles: Dataset):
        self.content, self.styles = content, styles

    def __len__(self) -> int:
        return len(self.content)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        style = int(torch.randint(len(self.styles), ()))
        return self.content[index], self.styles[style]


class RandomStyleSize:
    """Collate (content, style) pairs and resize the batch's styles to one random square size,
    drawn per batch from `sizes` = [low, high] (the paper's code: 128–300 px)."""

    def __init__(self, sizes: list[int] | None):
        self.sizes = sizes

    def __call__(self, items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        content = torch.stack([item[0] for item in items])
        style = torch.stack([item[1] for item in items])
        if self.sizes:
            side = int(torch.randint(self.sizes[0], self.sizes[1] + 1, ()))
            style = F.interpolate(style, size=(side, side), mode="bilinear", antialias=True)
        return content, style.clamp(0, 1)


class StyleSet:
    """The style images: training set (augmented), held-out names, and the grid's fixed styles."""

    def __init__(
        self,
        path: str | list[str] | None = None,
        split: str = "train",
        files: list[str] | None = None,
        synthetic: int = 0,
        size: int = 256,
        crop: int = 256,
        augment: bool = True,
        random_size: list[int] | None = None,
        holdout: int | str | list[str] = 0,
        grid_styles: int = 3,
        preprocess: bool = False,
        seed: int = 0,
    ):
        if synthetic <= 0 and not path:
            raise UserError(
                "method=arbitrary trains on style images: set data.style.path=DIR (e.g. the "
                "Kaggle Painter by Numbers train/ folder) or a hub id, or use data=synthetic."
            )
        if random_size is not None and not (
            len(random_size) == 2 and 0 < random_size[0] <= random_size[1]
        ):
            raise UserError(f"data.style.random_size must be [low, high] px, got {random_size}.")
        self.path, self.split, self.files, self.synthetic = path, split, files, synthetic
        self.size, self.crop, self.augment, self.random_size = size, crop, augment, random_size
        self.holdout, self.grid_styles, self.preprocess, self.seed = (
            holdout,
            grid_styles,
            preprocess,
            seed,
        )

    def load(self, workers: int) -> tuple[datasets.Dataset, datasets.Dataset]:
        """(training styles, held-out styles) as HF datasets with `image` and `name` columns."""
        if self.synthetic > 0:
            dataset = synthetic_images(self.synthetic, self.size + self.size // 4, self.seed + 1)
            names = [f"synthetic_{index:04d}" for index in range(len(dataset))]
            dataset = dataset.add_column("name", names)
        elif self.is_local() and not self.files:
            folders = [self.path] if isinstance(self.path, str) else self.path
            dataset = folder_images([Path(folder).expanduser() for folder in folders])
        else:
            dataset = load_images(self.path, self.split, self.files, None)
            column = image_column(dataset)
            if column != "image":
                dataset = dataset.rename_column(column, "image")
            if "name" not in dataset.column_names:
                dataset = dataset.add_column("name", [str(i) for i in range(len(dataset))])
        if self.preprocess:
            dataset = dataset.map(
                shrink,
                fn_kwargs={"column": "image", "size": self.size},
                num_proc=workers or None,
                desc=f"Resizing styles to {self.size} px (once; cached)",
            )
        held = holdout_indices(dataset["name"], self.holdout, self.seed)
        kept = sorted(set(range(len(dataset))) - set(held))
        return dataset.select(kept), dataset.select(held)

    def is_local(self) -> bool:
        """Whether `path` names local folders (one, or a list of them)."""
        if isinstance(self.path, str):
            return Path(self.path).expanduser().is_dir()
        missing = [folder for folder in self.path if not Path(folder).expanduser().is_dir()]
        if missing:
            raise UserError(f"data.style.path lists {missing[0]}, which is not a folder.")
        return True

    def train_transform(self) -> v2.Transform:
        """Augmented (`augment`) or plain random crops of `crop` px."""
        if self.augment:
            return style_augmentation(self.size, self.crop)
        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(self.size, antialias=True),
                v2.RandomCrop(self.crop),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def grid(self, train: datasets.Dataset, held: datasets.Dataset) -> tuple[Tensor, int]:
        """The grid's styles: up to `grid_styles` seen then as many unseen; and the seen count."""
        transform = centre_crops(self.size, self.crop)
        seen = [
            transform(to_rgb(train[i]["image"])) for i in range(min(self.grid_styles, len(train)))
        ]
        unseen = [
            transform(to_rgb(held[i]["image"])) for i in range(min(self.grid_styles, len(held)))
        ]
        return torch.stack(seen + unseen), len(seen)


class PairedDataModule(ContentDataModule):
    """`ContentDataModule` with a style set (`style`: `StyleSet` options): training batches are
    (photos, styles) pairs, each photo with a random style resized per batch, and validation
    batches are (photos, the grid's styles, how many of them are seen). train.py uses it for
    methods whose config says `trains_on_styles` (method=arbitrary)."""

    def __init__(self, *args, style: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.styles = StyleSet(**(style or {}), seed=self.seed)
        self.held_names: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        """Load photos and styles once; list the held-out styles in the run folder once a
        trainer is attached (train.py sets the data up before it builds one)."""
        if self.train_set is None:
            super().setup(stage)
            styles, held = self.styles.load(self.workers)
            self.train_set = PairedImages(
                self.train_set, ImageSet(styles, self.styles.train_transform())
            )
            grid, seen = self.styles.grid(styles, held)
            content = [self.val_set[i] for i in range(len(self.val_set))]
            batches = (
                [torch.stack(content)] if self.val_size is None else [p[None] for p in content]
            )
            self.val_set = [(photos, grid, seen) for photos in batches] if content else []
            self.held_names = list(held["name"]) if held.num_rows else []
        if self.trainer is not None and self.held_names:
            folder = Path(self.trainer.default_root_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / HOLDOUT_FILE).write_text("".join(f"{name}\n" for name in self.held_names))

    def train_dataloader(self) -> DataLoader:
        collate = RandomStyleSize(self.styles.random_size)
        return self.loader(
            self.train_set, shuffle=True, batch_size=self.batch_size, collate=collate
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=None)  # ready-made batches
