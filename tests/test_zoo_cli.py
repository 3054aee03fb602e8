"""Zoo models from the command line and Python (model=NAME, model=list), and the options every
trained network takes: strength= (a blend with the photo) and preserve_color=."""

import av
import pytest
import torch
from conftest import load_script, pattern, tiny_fast_checkpoint, write_video

import nst
from nst.api import compose_config
from nst.errors import UserError
from nst.image import from_pil, load_image, rgb_to_yiq, save_image
from nst.inference import batch_stylizer, load_stylizer

stylize_script = load_script("stylize")
EIGHT_BIT = 1 / 255 + 1e-6  # what writing an 8-bit image may change


def stylize(*overrides):
    stylize_script.main(compose_config("stylize", list(overrides)))


@pytest.fixture
def photo(tmp_path):
    return save_image(pattern(36, 52, seed=3), tmp_path / "photo.png")


def expected(source, image, **options):
    """What the command writes by default: the network at precision=auto."""
    return batch_stylizer(load_stylizer(source, **options), torch.device("cpu"), "auto")(image)


def test_a_model_name_stylises_an_image_a_folder_and_a_video_like_ckpt(tiny_zoo, photo, tmp_path):
    stylize("model=wave", f"input={photo}")
    output = load_image(tmp_path / "photo_wave.png")
    wave = expected("wave", load_image(photo))
    assert (output - wave).abs().max() <= EIGHT_BIT
    assert (output - load_image(photo)).abs().mean() > 0.05  # the network did something
    candy = expected("candy", load_image(photo))
    assert (candy - wave).abs().mean() > 0.05  # each name is its own model
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(pattern(40, 60, seed=1), photos / "a.png")
    save_image(pattern(40, 60, seed=2), photos / "b.jpg")
    stylize("model=candy", f"input={photos}")
    assert sorted(path.name for path in (tmp_path / "photos_candy").iterdir()) == ["a.png", "b.jpg"]
    clip = write_video(tmp_path / "clip.mp4", frames=4, audio=None)
    stylize("model=wave", f"input={clip}")
    with av.open(str(tmp_path / "clip_wave.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4


def test_model_list_prints_the_zoo_one_model_per_line_name_first(tiny_zoo, capsys):
    stylize("model=list")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(tiny_zoo) == ["candy", "wave"]
    assert "wave.jpg" in lines[1]


def test_model_list_says_when_the_zoo_is_empty(tmp_path, monkeypatch, capsys):
    from nst import zoo

    monkeypatch.setattr(zoo, "REGISTRY", tmp_path / "registry.json")
    stylize("model=list")
    assert "zoo is empty" in capsys.readouterr().out


def test_an_unknown_model_is_one_sentence_listing_the_names(tiny_zoo, photo, tmp_path, capsys):
    before = sorted(tmp_path.iterdir())
    for overrides in (["model=wav", f"input={photo}"], ["model=wav", "export=onnx"]):
        with pytest.raises(SystemExit) as exit_info:
            stylize(*overrides)
        stderr = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2
        assert stderr == "error: Unknown model 'wav'; the zoo has: candy, wave."
    assert sorted(tmp_path.iterdir()) == before
    with pytest.raises(UserError, match="Unknown model 'wav'"):
        nst.stylize(photo, model="wav")


def test_python_api_with_a_model(tiny_zoo, photo):
    image = nst.stylize(load_image(photo), model="wave", device="cpu")
    assert (from_pil(image) - expected("wave", load_image(photo))).abs().max() <= EIGHT_BIT


def test_strength_blends_the_photo_and_the_full_style(tmp_path, photo):
    checkpoint = tiny_fast_checkpoint(tmp_path / "tiny.ckpt")
    image = load_image(photo)
    full = expected(checkpoint, image)
    for strength in (0.0, 0.4):
        output = tmp_path / f"strength{strength}.png"
        stylize(f"ckpt={checkpoint}", f"input={photo}", f"strength={strength}", f"output={output}")
        blend = strength * full + (1 - strength) * image
        assert (load_image(output) - blend).abs().max() <= EIGHT_BIT
    assert (load_image(tmp_path / "strength0.0.png") - image).abs().max() <= EIGHT_BIT
    with pytest.raises(SystemExit) as exit_info:
        stylize(f"ckpt={checkpoint}", f"input={photo}", "strength=1.5")
    assert exit_info.value.code == 2


def test_preserve_color_works_with_checkpoints_and_models(tiny_zoo, tmp_path, photo):
    image = load_image(photo)
    full = expected("wave", image)
    stylize(
        "model=wave", f"input={photo}", "preserve_color=luminance", f"output={tmp_path}/lum.png"
    )
    kept = rgb_to_yiq(load_image(tmp_path / "lum.png"))
    # the luminance is the network's, the chroma (I, Q of YIQ) the photo's (up to the clamp
    # to [0, 1] of colours out of the RGB cube)
    assert (kept[:, 0] - rgb_to_yiq(full)[:, 0]).abs().mean() < 0.01
    assert (kept[:, 1:] - rgb_to_yiq(image)[:, 1:]).abs().mean() < 0.01
    assert (rgb_to_yiq(full)[:, 1:] - rgb_to_yiq(image)[:, 1:]).abs().mean() > 0.03
    checkpoint = tiny_fast_checkpoint(tmp_path / "tiny.ckpt")
    hist = tmp_path / "hist.png"
    stylize(f"ckpt={checkpoint}", f"input={photo}", "preserve_color=histogram", f"output={hist}")
    matched = load_image(hist)
    colours = matched.mean(dim=(2, 3))
    assert (colours - image.mean(dim=(2, 3))).abs().max() < 0.02  # the photo's mean colour
    assert (full.mean(dim=(2, 3)) - image.mean(dim=(2, 3))).abs().max() > 0.05
    with pytest.raises(SystemExit):
        stylize("model=wave", f"input={photo}", "preserve_color=sepia", f"output={tmp_path}/x.png")
    assert not (tmp_path / "x.png").exists()
