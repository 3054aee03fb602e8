import pytest
import torch
from PIL import Image

from nst.data import ContentDataModule
from nst.errors import UserError
from nst.image_sets import synthetic_images


def photo_folder(folder, count, size=(60, 40)):
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for index in range(count):
        pixels = (torch.rand(size[1], size[0], 3, generator=generator) * 255).byte().numpy()
        name = f"{'train' if index % 2 else 'other'}_{index}.png"
        Image.fromarray(pixels).save(folder / name)
    (folder / "notes.csv").write_text("not,an,image\n")
    return folder


def test_synthetic_batches_are_random_crops_in_unit_range():
    data = ContentDataModule(synthetic=6, size=32, crop=24, batch_size=2, workers=0, val_images=2)
    data.setup("fit")
    assert len(data.train_set) == 4 and len(data.val_set) == 2
    batches = list(data.train_dataloader())
    assert len(batches) == 2 and batches[0].shape == (2, 3, 24, 24)
    assert batches[0].dtype == torch.float32 and batches[0].min() >= 0 and batches[0].max() <= 1
    first, again = data.val_set[0], data.val_set[0]
    assert torch.equal(first, again)  # validation crops are fixed
    assert next(iter(data.val_dataloader())).shape == (2, 3, 24, 24)


def test_synthetic_images_are_seeded():
    first, second = synthetic_images(2, 16, seed=3), synthetic_images(2, 16, seed=3)
    assert first[1]["image"].tobytes() == second[1]["image"].tobytes()
    assert first[1]["image"].size == (21, 16)


def test_image_folder_with_file_patterns_and_preprocessing(tmp_path):
    folder = photo_folder(tmp_path / "photos", count=8)
    data = ContentDataModule(
        path=str(folder),
        files=["train_*"],
        size=20,
        crop=16,
        batch_size=3,
        workers=0,
        val_images=1,
        preprocess=True,
        cache_dir=str(tmp_path / "cache"),
    )
    data.setup("fit")
    assert len(data.train_set) + len(data.val_set) == 4  # train_1, _3, _5, _7
    stored = data.train_set.dataset[0]["image"]
    assert min(stored.size) == 20  # resized once, short side 20
    assert next(iter(data.train_dataloader())).shape == (3, 3, 16, 16)


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "No training images"),
        ({"path": "PHOTOS_FILE"}, "is a file"),
        ({"path": "MISSING"}, "Cannot load training images"),
        ({"path": "PHOTOS", "val_images": 8}, "training needs more than"),
        ({"synthetic": 4, "crop": 300}, "must not exceed"),
        ({"synthetic": 4, "batch_size": 0}, "batch_size must be a positive"),
        ({"synthetic": 4, "workers": -1}, "workers must be"),
    ],
)
def test_bad_data_settings_are_user_errors(tmp_path, options, message):
    folder = photo_folder(tmp_path / "photos", count=8)
    paths = {
        "PHOTOS": str(folder),
        "PHOTOS_FILE": str(folder / "train_1.png"),
        "MISSING": str(tmp_path / "nowhere"),
    }
    if "path" in options:
        options = {**options, "path": paths[options["path"]], "cache_dir": str(tmp_path / "c")}
    with pytest.raises(UserError, match=message):
        ContentDataModule(**{"workers": 0, **options}).setup("fit")


def test_an_unreachable_hub_fails_at_once_in_one_sentence(monkeypatch):
    import datasets
    from huggingface_hub import constants

    from nst import image_sets

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # restored after the test
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    assert not image_sets.hub_reachable()
    with pytest.raises(UserError, match="hub cannot be reached and it is not in the local cache"):
        image_sets.load_images("nst-test/no-such-dataset", "train", None, None)
    assert datasets.config.HF_HUB_OFFLINE  # offline for the rest of the run: no retries


def test_a_local_folder_loads_without_download_bars(tmp_path, capfd):
    from nst.image_sets import load_images

    dataset = load_images(str(photo_folder(tmp_path / "photos", 4)), "train", None, None)
    assert len(dataset) == 2  # the train_* files: the folder's own split
    printed = "".join(capfd.readouterr())
    assert "Downloading" not in printed and "Generating" not in printed
