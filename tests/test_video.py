"""Video stylisation: stylize.py ckpt= input=VIDEO keeps frames, size, rate and audio; bad files
fail in one sentence and leave nothing; the temporal stability loss."""

import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import (
    RATE,
    ROOT,
    load_script,
    pattern,
    script_env,
    tiny_arbitrary_checkpoint,
    tiny_fast_checkpoint,
    write_audio_only,
    write_video,
)

from nst.api import compose_config
from nst.errors import UserError
from nst.image import save_image
from nst.inference import batch_stylizer, load_stylizer
from nst.networks import TransformNet
from nst.stability import random_affine, stability_loss, warp
from nst.video import is_video, output_size, stylize_video

stylize_script = load_script("stylize")


def probe(path) -> dict:
    """Decoded frame count, size and rate of the video stream, and the audio codec (or None)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video)]
        return {
            "frames": len(frames),
            "size": (video.width, video.height),
            "rate": video.average_rate,
            "audio": audio,
            "pixels": np.stack(frames),
        }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A fast-method checkpoint of a small randomly initialised TransformNet."""
    return tiny_fast_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt")


def stylize(*overrides):
    stylize_script.main(compose_config("stylize", list(overrides)))


def test_a_video_round_trip_keeps_frames_size_rate_and_audio(checkpoint, tmp_path):
    clip = write_video(tmp_path / "clip.mp4")
    before = clip.read_bytes()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stylize.py"),
            f"ckpt={checkpoint}",
            f"input={clip}",
            "batch_size=4",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=script_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "audio copied" in result.stdout and "10 frames" in result.stdout
    source, output = probe(clip), probe(tmp_path / "clip_wave.mp4")
    assert output["frames"] == 10 and output["size"] == (48, 32) and output["rate"] == RATE
    assert output["audio"] == "aac" and clip.read_bytes() == before
    # The frames are the network's output, not the source: compared in luma, which H.264 keeps
    # at full resolution (a random network's colour noise does not survive 4:2:0 chroma).
    network = load_stylizer(checkpoint)
    with torch.no_grad():
        expected = network(torch.from_numpy(source["pixels"]).permute(0, 3, 1, 2).float() / 255)
    expected = (expected.permute(0, 2, 3, 1) * 255).numpy()
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs((output["pixels"] - expected) @ luma).mean() < 6
    assert np.abs((output["pixels"] - source["pixels"].astype(float)) @ luma).mean() > 20
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4", "clip_wave.mp4"]


def test_an_arbitrary_checkpoint_stylises_a_video_with_any_style(tmp_path):
    network = tiny_arbitrary_checkpoint(tmp_path / "arbitrary.ckpt")
    style = save_image(pattern(24, 24, seed=3), tmp_path / "painting.png")
    clip = write_video(tmp_path / "clip.mp4", frames=6)
    stylize(f"ckpt={network}", f"input={clip}", f"style={style}", "batch_size=4")
    output = probe(tmp_path / "clip_painting.mp4")
    assert output["frames"] == 6 and output["size"] == (48, 32) and output["audio"] == "aac"
    assert np.abs(output["pixels"].astype(float) - probe(clip)["pixels"]).mean() > 5


def test_audio_the_container_cannot_hold_is_transcoded_to_aac(checkpoint, tmp_path):
    clip = write_video(tmp_path / "clip.mkv", frames=4, audio="libopus", rate=Fraction(25))
    output = tmp_path / "styled.mov"
    network = load_stylizer(checkpoint)
    device = torch.device("cpu")
    report = stylize_video(clip, output, batch_stylizer(network, device), device, progress=False)
    assert "audio transcoded to AAC (.mov cannot hold opus)" in report.notes
    result = probe(output)
    assert result["audio"] == "aac" and result["frames"] == 4 and result["rate"] == 25


def test_odd_sizes_lose_one_pixel_and_size_resizes(checkpoint, tmp_path):
    clip = write_video(
        tmp_path / "odd.mkv", frames=3, width=35, height=21, audio=None, pix_fmt="rgb24"
    )
    network = load_stylizer(checkpoint)
    device = torch.device("cpu")
    report = stylize_video(
        clip, tmp_path / "a.mp4", batch_stylizer(network, device), device, progress=False
    )
    assert (report.width, report.height) == (34, 20) and "cropped 35×21 to 34×20" in report.notes[0]
    assert probe(tmp_path / "a.mp4")["size"] == (34, 20)
    assert output_size(1920, 1080, 640) == (640, 360) and output_size(1920, 1080, 101) == (100, 56)


def test_video_detection_by_extension_and_content(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=2, audio=None)
    renamed = tmp_path / "clip.data"
    renamed.write_bytes(clip.read_bytes())
    (tmp_path / "notes.data").write_text("hello")
    assert is_video(clip) and is_video(renamed) and is_video(tmp_path / "missing.mkv")
    assert not is_video(tmp_path / "notes.data") and not is_video(tmp_path / "photo.png")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00\x00\x18ftypmp42 this is not really a video" * 3, "Cannot read"),
        (b"", "Cannot read .* as a video \\(it is empty\\)"),
    ],
)
def test_a_corrupt_video_is_one_sentence_and_no_output(
    checkpoint, tmp_path, capsys, content, message
):
    clip = tmp_path / "broken.mp4"
    clip.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        stylize(f"ckpt={checkpoint}", f"input={clip}")
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1
    assert __import__("re").search(message, error), error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.mp4"]


def test_bad_video_outputs_are_refused_before_any_work(checkpoint, tmp_path, capsys):
    clip = write_video(tmp_path / "clip.mp4", frames=2, audio=None)
    (tmp_path / "taken.mp4").write_bytes(b"keep")
    for output, message in [
        ("out.gif", "use a .mp4, .mkv or .mov output"),
        ("taken.mp4", "already exists"),
        ("clip.mp4", "also an input"),
        ("nowhere/out.mp4", "does not exist"),
    ]:
        with pytest.raises(SystemExit):
            stylize(f"ckpt={checkpoint}", f"input={clip}", f"output={tmp_path / output}")
        assert message in capsys.readouterr().err
    assert (tmp_path / "taken.mp4").read_bytes() == b"keep"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4", "taken.mp4"]


def test_an_interrupted_run_leaves_no_file(checkpoint, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=10, audio="aac")
    calls = []

    def interrupt_on_second_batch(images):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return images

    with pytest.raises(KeyboardInterrupt):
        stylize_video(
            clip,
            tmp_path / "out.mp4",
            interrupt_on_second_batch,
            torch.device("cpu"),
            batch_size=3,
            progress=False,
        )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]


def test_stability_loss_is_zero_for_equivariant_networks_and_positive_otherwise():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 24, 40)
    magnitudes = {"shift": 3.0, "rotation": 2.0, "zoom": 0.05}

    def identity(x):
        return x

    def constant(x):
        return torch.full_like(x, 0.3)

    # The identity commutes with any warp (noise off: it passes noise through, by design).
    assert stability_loss(identity, images, images, noise=0.0, **magnitudes) == 0
    # A constant image commutes with warps and ignores noise.
    loss = stability_loss(constant, images, constant(images), noise=0.1, **magnitudes)
    assert loss.abs() < 1e-12
    network = TransformNet(channels=4, residual_blocks=1)
    with torch.no_grad():
        output = network(images)
        assert stability_loss(network, images, output, noise=0.0, **magnitudes) > 1e-5
        noise_only = stability_loss(network, images, output, 0.05, shift=0, rotation=0, zoom=0)
    assert noise_only > 1e-6
    assert stability_loss(identity, images, images, 0.05, 0, 0, 0) == pytest.approx(0.05**2, 0.1)


def test_the_random_warp_is_a_small_rigid_motion_in_pixels():
    torch.manual_seed(1)
    theta = random_affine(
        64, shift=2.0, rotation=1.0, zoom=0.0, height=20, width=60, device=torch.device("cpu")
    )
    assert theta[:, 0, 2].abs().max() <= 2 * 2 / 60 and theta[:, 1, 2].abs().max() <= 2 * 2 / 20
    pixels = theta[:, :, :2] * torch.tensor([[1.0, 20 / 60], [60 / 20, 1.0]])  # undo the aspect
    determinant = torch.linalg.det(pixels)
    assert torch.allclose(determinant, torch.ones(64), atol=1e-5)  # a rotation: no shear or zoom
    image = torch.rand(1, 3, 20, 60)
    identity = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    assert torch.allclose(warp(image, identity), image, atol=1e-5)


def test_fast_training_logs_the_stability_term_only_when_switched_on():
    from test_fast import build_module

    content = torch.rand(2, 3, 32, 32)
    module = build_module()
    module.setup("fit")
    module.log_dict = lambda *args, **kwargs: None
    assert module.hparams.stability_weight == 0  # off by default: the paper's loss
    for weight, present in ((0.0, False), (10.0, True)):
        module.hparams.stability_weight = weight
        _, terms = module.step(content, "train")
        assert ("stability" in terms) == present
        if present:
            rest = terms["content"] + terms["style"] + terms["tv"]
            assert torch.allclose(terms["total"], rest + terms["stability"])
            assert terms["stability"] > 0
    with pytest.raises(UserError, match="stability_noise must be zero or positive"):
        build_module("method.stability_noise=-1")


@pytest.mark.parametrize(("rotation", "rising"), [(90, True), (270, False), (180, None)])
def test_a_phone_video_is_turned_upright_by_its_display_rotation(tmp_path, rotation, rising):
    """Stored 48×32 with green rising down the rows; shown turned counter-clockwise by the
    display matrix's angle, so upright the green runs along the columns (or is flipped)."""
    clip = write_video(tmp_path / "phone.mp4", frames=3, audio=None, rotation=rotation)
    output = tmp_path / "out.mp4"
    report = stylize_video(clip, output, lambda images: images, torch.device("cpu"), progress=False)
    result = probe(output)
    green = result["pixels"][0, ..., 1].astype(float)  # H×W of the first frame
    if rising is None:
        assert result["size"] == (48, 32)
        assert green[0].mean() > green[-1].mean() + 100  # upside down: rows fall
    else:
        assert result["size"] == (32, 48)
        assert f"({rotation}°)" in " ".join(report.notes)
        columns = green.mean(axis=0)
        assert (columns[-1] - columns[0] > 100) == rising
        assert abs(columns[-1] - columns[0]) > 100 and green.std(axis=0).mean() < 20


def video_cases(folder):
    """(file, expectation): fuzzed videos; "ok" must stylise, "error" one sentence, "either"."""
    whole = write_video(folder / "whole.mp4", frames=12, audio="aac").read_bytes()
    cases = []
    for cut in (16, 100, len(whole) // 3, len(whole) // 2, len(whole) - 200):
        path = folder / f"truncated{cut}.mp4"
        path.write_bytes(whole[:cut])
        cases.append((path, "either" if cut > len(whole) // 2 else "error"))
    (folder / "zero.mp4").write_bytes(b"")
    cases.append((folder / "zero.mp4", "error"))
    cases.append((write_audio_only(folder / "audio_only.mp4"), "error"))
    cases.append((write_video(folder / "no_frames.mp4", frames=0, audio=None), "error"))
    variable = [0, 1, 3, 4, 9, 10, 20, 21]  # in the 1/RATE time base: gaps of 1 to 10
    cases.append((write_video(folder / "vfr.mkv", 8, audio=None, timestamps=variable), "ok"))
    odd = write_video(folder / "odd.mkv", 4, width=47, height=33, audio=None, pix_fmt="rgb24")
    cases.append((odd, "ok"))
    cases.append((write_video(folder / "rotated.mp4", 4, audio=None, rotation=90), "ok"))
    return cases


def test_fuzzed_videos_stylise_or_fail_in_one_sentence(checkpoint, tmp_path, capsys):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    cases = video_cases(inputs)
    for path, expected in cases:
        output = outputs / f"{path.stem}_out.mp4"
        capsys.readouterr()
        try:
            stylize(f"ckpt={checkpoint}", f"input={path}", f"output={output}")
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        error = capsys.readouterr().err.strip()
        if code == 0:
            assert expected in ("ok", "either"), f"{path.name} stylised but should fail"
            assert probe(output)["frames"] > 0
            output.unlink()
        else:
            assert expected in ("error", "either"), f"{path.name}: {error}"
            assert code == 2 and error.count("\n") == 0 and error.startswith("error: "), error
        assert list(outputs.iterdir()) == [], path.name
    print(f"video fuzzing: {len(cases)} cases")


def test_a_variable_frame_rate_keeps_every_timestamp(tmp_path):
    variable = [0, 1, 3, 4, 9, 10, 20, 21]
    clip = write_video(tmp_path / "vfr.mkv", 8, audio=None, timestamps=variable)
    output = tmp_path / "out.mkv"
    stylize_video(clip, output, lambda images: images, torch.device("cpu"), progress=False)

    def pts(path):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return [float(frame.pts * stream.time_base) for frame in container.decode(stream)]

    assert pts(output) == pytest.approx(pts(clip), abs=1e-3)
