"""Image fuzzing: files generated here, each stylised through stylize.py's own code path
(in-process, a zoo model, so the suite stays fast) and about ten through stylize.py itself.

Every case either stylises correctly (EXIF rotation applied, transparency over white, the first
frame of an animation) or ends in one sentence with exit code 2, no output and the input
untouched. The count of cases is printed (pytest -s) and asserted.
"""

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, load_script, png_claiming, script_env
from PIL import Image

from nst.api import compose_config
from nst.image import load_image

stylize_script = load_script("stylize")
SUFFIXES = (".jpg", ".png", ".webp", ".bmp", ".tif")
READABLE = "ok"  # a case that must stylise


def photo(width: int = 24, height: int = 16, seed: int = 0) -> Image.Image:
    """A small RGB picture with a left-to-right gradient (so a rotation is visible)."""
    generator = np.random.default_rng(seed)
    pixels = generator.integers(0, 255, (height, width, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    return Image.fromarray(pixels, "RGB")


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def exif_rotated(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(photo(), "JPEG", exif=exif.tobytes())


def animated(kind: str) -> bytes:
    frames = [Image.new("RGB", (20, 12), color) for color in ((255, 0, 0), (0, 0, 255))]
    return encoded(frames[0], kind, save_all=True, append_images=frames[1:], duration=100, loop=0)


def cases(folder: Path) -> list[tuple[Path, str]]:
    """(input path, expectation): READABLE, or "error" for one sentence and exit code 2."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []

    def add(name: str, data: bytes, expected: str) -> None:
        path = folder / name
        path.write_bytes(data)
        made.append((path, expected))

    rng = random.Random(0)
    for seed in range(7):
        for suffix in SUFFIXES:
            add(f"random{seed}{suffix}", rng.randbytes(rng.choice([3, 64, 2048])), "error")
    for suffix in SUFFIXES:
        add(f"empty{suffix}", b"", "error")
    signatures = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff\xe0", ".gif": b"GIF89a"}
    signatures[".webp"] = b"RIFF\x00\x01\x00\x00WEBPVP8 "
    for suffix, signature in signatures.items():  # the right magic bytes, then noise
        add(f"magic_then_noise{suffix}", signature + rng.randbytes(500), "error")
    for kind, suffix in (("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp")):
        whole = encoded(photo(64, 48), kind)
        for cut in (8, 30, 100, len(whole) // 2):
            add(f"truncated{cut}{suffix}", whole[:cut], "error")
        add(f"truncated_end{suffix}", whole[:-20], "either")  # PNG: all pixels, no IEND
        for seed in range(6):  # a few bytes flipped past the header: decodes or fails cleanly
            damaged = bytearray(whole)
            for _ in range(4):
                damaged[rng.randrange(len(whole) // 3, len(whole))] = rng.randrange(256)
            add(f"flipped{seed}{suffix}", bytes(damaged), "either")
    add("bomb.png", png_claiming(100_000, 100_000), "error")
    add("bomb_wide.png", png_claiming(200_000, 1_000), "error")
    add("cmyk.jpg", encoded(photo().convert("CMYK"), "JPEG"), READABLE)
    add("gray.png", encoded(photo().convert("L"), "PNG"), READABLE)
    add("gray_alpha.png", encoded(photo().convert("LA"), "PNG"), READABLE)
    add("rgba.png", encoded(photo().convert("RGBA"), "PNG"), READABLE)
    add("bilevel.png", encoded(photo().convert("1"), "PNG"), READABLE)
    sixteen = Image.fromarray(np.linspace(0, 65535, 24 * 16).reshape(16, 24).astype(np.uint16))
    add("sixteen_bit.png", encoded(sixteen, "PNG"), READABLE)
    add("float.tif", encoded(photo().convert("F"), "TIFF"), READABLE)
    palette = photo().convert("P")
    add("palette_transparent.png", encoded(palette, "PNG", transparency=0), READABLE)
    add("palette.gif", encoded(palette, "GIF"), READABLE)
    add("tiny.png", encoded(photo(1, 1), "PNG"), READABLE)
    add("skinny.png", encoded(photo(300, 2), "PNG"), "error")  # 32×1 px: too thin for the net
    for orientation in range(1, 9):
        add(f"exif{orientation}.jpg", exif_rotated(orientation), READABLE)
    add("animated.gif", animated("GIF"), READABLE)
    add("animated.webp", animated("WEBP"), READABLE)
    add("text.jpg", b"This is not an image, it only has the name of one.\n", "error")
    add("html.png", b"<!doctype html><html><body>404</body></html>", "error")
    loop = folder / "loop.jpg"
    os.symlink(loop, loop)
    made.append((loop, "error"))
    dangling = folder / "dangling.png"
    os.symlink(folder / "nowhere.png", dangling)
    made.append((dangling, "error"))
    directory = folder / "folder.jpg"
    directory.mkdir()
    made.append((directory, "error"))
    return made


def stylize_in_process(path: Path, output: Path, capsys) -> tuple[int, str]:
    """(exit code, stderr) of stylize.py's main for `path`, as the command line composes it."""
    config = compose_config(
        "stylize", [f"input={path}", "model=wave", f"output={output}", "size=32", "device=cpu"]
    )
    capsys.readouterr()
    try:
        stylize_script.main(config)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def check_outcome(path: Path, expected: str, code: int, stderr: str, output: Path) -> None:
    lines = stderr.strip().splitlines()
    if code == 0:
        assert expected in (READABLE, "either"), f"{path.name} stylised but should fail"
        assert output.is_file() and load_image(output).shape[1] == 3
        return
    assert expected in ("error", "either"), f"{path.name} failed: {stderr}"
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (path.name, stderr)
    assert not output.exists(), path.name
    assert [p.name for p in output.parent.iterdir()] == [], path.name  # no temporary left


def test_fuzzed_images_stylise_or_fail_in_one_sentence(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    made = cases(inputs)
    before = {path: path.read_bytes() for path, _ in made if path.is_file()}
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    counts = {"stylised": 0, "refused": 0}
    for path, expected in made:
        output = outputs / f"{path.stem}_out.png"
        code, stderr = stylize_in_process(path, output, capsys)
        check_outcome(path, expected, code, stderr, output)
        counts["stylised" if code == 0 else "refused"] += 1
        output.unlink(missing_ok=True)
    assert {path: path.read_bytes() for path in before} == before  # inputs untouched
    with capsys.disabled():
        print(f"\nimage fuzzing: {len(made)} cases, {counts}")
    assert len(made) >= 100


def test_fuzzed_images_are_decoded_as_documented(tmp_path):
    """EXIF orientation 5–8 swaps the sides; transparency is over white; an animation gives
    its first frame."""
    made = dict((path.name, path) for path, _ in cases(tmp_path))
    upright, turned = load_image(made["exif1.jpg"]), load_image(made["exif6.jpg"])
    assert upright.shape[-2:] == (16, 24) and turned.shape[-2:] == (24, 16)
    left_to_right = upright[0, 0].mean(0)  # the red gradient survives JPEG
    assert left_to_right[-1] > left_to_right[0] + 0.5
    transparent = load_image(made["palette_transparent.png"])
    assert transparent.shape == (1, 3, 16, 24)
    gif, webp = load_image(made["animated.gif"]), load_image(made["animated.webp"])
    for first in (gif, webp):  # the red frame, not the blue one
        assert first[0, 0].mean() > 0.8 and first[0, 2].mean() < 0.2
    assert load_image(made["sixteen_bit.png"]).max() > 0.95  # scaled, not clipped to 255/65535


@pytest.mark.parametrize(
    "name",
    ["random0.jpg", "empty.png", "truncated30.jpg", "bomb.png", "loop.jpg", "folder.jpg"]
    + ["text.jpg", "cmyk.jpg", "exif6.jpg", "animated.gif"],
)
def test_stylize_py_itself_on_fuzzed_images(tmp_path, name):
    made = dict((path.name, (path, expected)) for path, expected in cases(tmp_path / "in"))
    path, expected = made[name]
    output = tmp_path / "out" / "result.png"
    output.parent.mkdir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "stylize.py"), f"input={path}", "model=wave", "size=32"]
        + [f"output={output}"],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=300,
    )
    check_outcome(path, expected, result.returncode, result.stderr, output)
    assert "Traceback" not in result.stderr
