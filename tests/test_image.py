import os

import numpy as np
import pytest
import torch
from conftest import pattern
from PIL import Image

from nst.errors import UserError
from nst.image import (
    finish_color_preservation,
    load_image,
    luminance,
    match_color_histogram,
    prepare_color_preservation,
    resize_long_side,
    rgb_to_yiq,
    save_image,
    yiq_to_rgb,
)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=100)
    loaded = load_image(path)
    assert loaded.shape == (1, 3, 30, 20)
    assert loaded[0, 2, 2, 10] > 0.8  # the blue band is on top after rotation


@pytest.mark.parametrize(
    "mode, value",
    [("L", 128), ("RGBA", (10, 20, 30, 255)), ("P", 3), ("I;16", 65535), ("LA", (50, 255))],
)
def test_modes_become_rgb(tmp_path, mode, value):
    image = Image.new(mode, (9, 7), value)
    path = tmp_path / "image.png"
    image.save(path)
    loaded = load_image(path)
    assert loaded.shape == (1, 3, 7, 9) and loaded.dtype == torch.float32
    assert loaded.min() >= 0 and loaded.max() <= 1


def test_sixteen_bit_values_scale_instead_of_clipping(tmp_path):
    array = np.full((4, 4), 32768, dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(array).save(path)
    loaded = load_image(path)
    torch.testing.assert_close(loaded.mean(), torch.tensor(128 / 255), atol=2 / 255, rtol=0)


def test_transparency_becomes_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert load_image(path).min() == 1.0


def test_resize_by_long_side():
    image = torch.rand(1, 3, 30, 60)
    assert resize_long_side(image, 20).shape == (1, 3, 10, 20)
    assert resize_long_side(image.transpose(2, 3), 20).shape == (1, 3, 20, 10)
    assert resize_long_side(image, 120).shape[-2:] == (60, 120)
    with pytest.raises(UserError, match="positive"):
        resize_long_side(image, 0)


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")])
def test_save_by_extension_leaves_no_temp_files(tmp_path, suffix, fmt):
    image = pattern(16, 20, seed=0)
    path = save_image(image, tmp_path / f"out{suffix}")
    assert Image.open(path).format == fmt
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    reloaded = load_image(path)
    assert reloaded.shape == image.shape
    if suffix == ".png":
        torch.testing.assert_close(reloaded, image, atol=0.5 / 255 + 1e-6, rtol=0)


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(torch.zeros(1, 3, 4, 4), path)
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(torch.ones(1, 3, 4, 4), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_rejects_unknown_extension_and_missing_folder(tmp_path):
    with pytest.raises(UserError, match="extension"):
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / "out.gif")
    with pytest.raises(UserError, match="does not exist"):
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / "missing" / "out.png")


def test_yiq_round_trip():
    image = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        luminance(image)[:, 0], 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
    )


def test_luminance_transfer_keeps_content_chroma_and_matches_luminance_statistics():
    content = 0.25 + 0.5 * pattern(32, 32, seed=3)
    style = torch.rand(1, 3, 24, 24) ** 2
    work_content, (work_style,) = prepare_color_preservation(content, [style], "luminance")
    # Transfer runs on gray images; the style's luminance is moved to the content's statistics.
    assert torch.allclose(work_style[:, 0], work_style[:, 1])
    style_y, content_y = work_style[:, 0], luminance(content)
    torch.testing.assert_close(style_y.mean(), content_y.mean(), atol=0.01, rtol=0)
    torch.testing.assert_close(style_y.std(), content_y.std(), atol=0.01, rtol=0)
    # Output: the result's luminance with the content's I and Q.
    result = torch.rand(1, 3, 32, 32) * 0.2 + 0.4
    output = finish_color_preservation(result, content, "luminance")
    torch.testing.assert_close(
        rgb_to_yiq(output)[:, 1:], rgb_to_yiq(content)[:, 1:], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(luminance(output), luminance(result), atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["pca", "chol", "sym"])
def test_histogram_matching_transfers_mean_and_covariance(mode):
    content = 0.2 + 0.6 * pattern(32, 32, seed=4)
    style = 0.3 + 0.4 * torch.rand(1, 3, 30, 30)
    matched = match_color_histogram(style, content, mode)
    pixels, target = matched.reshape(3, -1).double(), content.reshape(3, -1).double()
    torch.testing.assert_close(pixels.mean(1), target.mean(1), atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.cov(pixels), torch.cov(target), atol=2e-4, rtol=0)


def test_unknown_color_mode():
    with pytest.raises(UserError, match="preserve_color"):
        prepare_color_preservation(torch.rand(1, 3, 4, 4), [], "sepia")


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "not found"),
        (b"", "empty"),
        (b"this is not an image", "Cannot read"),
    ],
)
def test_bad_files_are_user_errors(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=reason):
        load_image(path)


def test_truncated_image_is_a_user_error(tmp_path):
    path = tmp_path / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        path
    )
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(path.read_bytes()[:600])
    with pytest.raises(UserError, match="Cannot read"):
        load_image(truncated)
