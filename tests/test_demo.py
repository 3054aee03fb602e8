"""The demo's functions, called directly: uploads, each method, the size limit, cancelling."""

import struct
import zlib

import numpy as np
import pytest
import torch
from demo_helpers import build_tiny_zoo
from PIL import Image

from nst import zoo
from nst.demo.jobs import (
    NO_ARBITRARY_MODEL,
    NO_ZOO_MODELS,
    DemoSettings,
    OptimisationJob,
    stylize_painting,
    stylize_zoo,
    zoo_models,
)
from nst.demo.uploads import read_source, read_upload, result_name
from nst.errors import UserError
from nst.image import from_pil, rgb_to_yiq

SETTINGS = DemoSettings(vgg_weights="random", device="cpu", preview_every=2)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """nst.zoo pointed at a folder of tiny random-weight models: wave, candy (fast), any."""
    folder = tmp_path_factory.mktemp("zoo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo, "FOLDER", folder)
        patch.setattr(zoo, "REGISTRY", folder / "registry.json")
        yield build_tiny_zoo(folder)


@pytest.fixture
def empty_zoo(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "FOLDER", tmp_path)
    monkeypatch.setattr(zoo, "REGISTRY", tmp_path / "registry.json")


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width`×`height` pixels (the data is one tiny image)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    pixels = zlib.compress(b"\x00" + b"\x00" * 3)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_bad_uploads_are_one_sentence_naming_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    good = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), "red").save(good)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_claiming(20000, 20000))
    wide = tmp_path / "wide.png"
    wide.write_bytes(png_claiming(20000, 16))
    cases = [
        (text, "notes.txt is not an image this page can read"),
        (truncated, "cut.png is truncated or damaged"),
        (empty, "empty.jpg is empty"),
        (huge, "huge.png is too large"),
        (wide, "wide.png is too large (20000×16 px); this page takes images up to 6000 px"),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_upload(path)
    assert read_upload(good).size == (40, 30)


def test_the_size_limit_is_the_configured_long_side(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), "blue").save(path)
    assert read_upload(path, max_side=40).size == (40, 30)
    with pytest.raises(UserError, match="up to 39 px"):
        read_upload(path, max_side=39)


def test_the_download_name_says_photo_and_style():
    assert result_name("sample:coffee", "wave") == "coffee_wave.png"
    assert result_name("/tmp/x/My photo (1).jpg", "starry+waves_basic") == (
        "My_photo_1_starry+waves_basic.png"
    )


def test_zoo_styles_stylise_at_the_asked_size_and_differ(tiny_zoo):
    assert zoo_models("fast") == ["candy", "wave"] and zoo_models("arbitrary") == ["any"]
    photo = read_source("sample:coffee")  # 600×400
    wave = stylize_zoo("sample:coffee", "wave", 96, "none", SETTINGS)
    candy = stylize_zoo("sample:coffee", "candy", 96, "none", SETTINGS)
    assert wave.size == candy.size == (96, 64)
    resized = as_array(photo.resize(wave.size))
    assert np.abs(as_array(wave) - resized).mean() > 5
    assert np.abs(as_array(wave) - as_array(candy)).mean() > 1
    with pytest.raises(UserError, match="Pick a style"):
        stylize_zoo("sample:coffee", "starry", 96, "none", SETTINGS)


def test_colour_preservation_keeps_the_photos_colours(tiny_zoo):
    photo = from_pil(read_source("sample:coffee").resize((96, 64)))
    plain, luminance, histogram = (
        from_pil(stylize_zoo("sample:coffee", "wave", 96, mode, SETTINGS))
        for mode in ("none", "luminance", "histogram")
    )
    chroma = rgb_to_yiq(photo)[:, 1:]
    assert (rgb_to_yiq(luminance)[:, 1:] - chroma).abs().mean() < 0.02
    assert (rgb_to_yiq(plain)[:, 1:] - chroma).abs().mean() > 0.04
    photo_mean = photo.mean(dim=(2, 3))
    assert (histogram.mean(dim=(2, 3)) - photo_mean).abs().max() < 0.02
    assert (plain.mean(dim=(2, 3)) - photo_mean).abs().max() > 0.04


def test_any_painting_follows_strength_and_blend(tiny_zoo):
    def run(paintings, strength=1.0, blend=0.5):
        image = stylize_painting("sample:chelsea", paintings, strength, blend, 64, "none", SETTINGS)
        return as_array(image)

    waves = run(["sample:waves"])
    assert waves.shape == (43, 64, 3)  # chelsea is 451×300
    assert np.abs(waves - run(["sample:waves"], strength=0.0)).mean() > 1
    np.testing.assert_allclose(run(["sample:waves", "sample:mosaic"], blend=0.0), waves, atol=1)
    assert np.abs(run(["sample:waves", "sample:mosaic"], blend=1.0) - waves).mean() > 1


def test_without_models_the_page_says_so_in_one_line(empty_zoo):
    with pytest.raises(UserError, match="No arbitrary-style model is in the zoo yet"):
        stylize_painting("sample:chelsea", ["sample:waves"], 1.0, 0.5, 64, "none", SETTINGS)
    with pytest.raises(UserError, match="No zoo styles are installed yet"):
        stylize_zoo("sample:chelsea", None, 64, "none", SETTINGS)
    from nst.demo.page import build_page

    blocks = build_page(SETTINGS).blocks.values()
    notes = [block.value for block in blocks if type(block).__name__ == "Markdown"]
    assert NO_ARBITRARY_MODEL in notes and NO_ZOO_MODELS in notes
    buttons = {block.elem_id: block for block in blocks if type(block).__name__ == "Button"}
    assert buttons["painting-stylise"].interactive is False
    assert not any(type(block).__name__ == "Gallery" for block in blocks)


def optimisation(method: str, iterations: int, size: int = 40, mode: str = "none"):
    photo, style = read_source("sample:chelsea"), read_source("sample:waves")
    return OptimisationJob(photo, style, method, iterations, size, mode, SETTINGS)


@pytest.mark.parametrize("method", ["basic", "improved"])
def test_optimisation_reports_every_step_with_intermediate_images(method):
    job = optimisation(method, 6, mode="luminance").start()
    job.join()
    updates = [job.updates.get() for _ in range(job.updates.qsize())]
    assert [update.step for update in updates] == [1, 2, 3, 4, 5, 6, 6]
    assert [update.step for update in updates if update.image is not None] == [2, 4, 6]
    last = updates[-1]
    assert last.state == "done" and last.image.size == (40, 27)
    photo = as_array(read_source("sample:chelsea").resize((40, 27)))
    assert np.abs(as_array(last.image) - photo).mean() > 1
    preview = as_array(updates[1].image)
    assert np.abs(preview[..., 0] - preview[..., 2]).mean() > 1  # in colour, not the gray work
    with pytest.raises(UserError, match="Unknown method"):
        optimisation("fast", 6)


def test_cancel_stops_the_optimisation_within_a_step():
    job = optimisation("basic", 100_000).start()
    for update in job.updates_until_done():
        if update.step >= 3:
            job.cancel()
    job.join()
    assert update.state == "cancelled" and update.message == "Cancelled."
    assert not job.thread.is_alive()
    assert 3 <= job.steps_done <= 4


def test_a_fast_style_runs_while_an_optimisation_runs(tiny_zoo):
    job = optimisation("basic", 100_000).start()
    try:
        first = next(job.updates_until_done())
        assert first.state == "running"
        image = stylize_zoo("sample:coffee", "wave", 64, "none", SETTINGS)
        assert image.size == (64, 43)
        assert job.thread.is_alive() and not job.stop.is_set()
    finally:
        job.cancel()
        job.join()


def test_errors_reach_the_page_as_one_sentence(capsys):
    from nst.demo.page import fast_handler

    def bad_upload(photo):
        raise UserError("notes.txt is not an image this page can read")

    def bug(photo):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    _, _, message = fast_handler(bad_upload)("sample:coffee")
    assert "notes.txt is not an image this page can read" in message and "⚠" in message
    _, _, message = fast_handler(bug)("sample:coffee")
    assert "Stylising failed (OutOfMemoryError)" in message and "Traceback" not in message
    assert "Traceback" in capsys.readouterr().err  # the server log keeps the details


def test_the_server_binds_to_this_machine_and_never_shares_by_default(tmp_path):
    from nst.demo.cli import parse_arguments, use_zoo_folder

    defaults = parse_arguments([])
    assert (defaults.host, defaults.port, defaults.share) == ("127.0.0.1", None, False)
    chosen = parse_arguments(["--host", "0.0.0.0", "--port", "8000", "--share"])
    assert (chosen.host, chosen.port, chosen.share) == ("0.0.0.0", 8000, True)
    with pytest.raises(UserError, match="has no registry.json"):
        use_zoo_folder(tmp_path)
