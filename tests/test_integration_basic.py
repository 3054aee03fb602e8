"""The basic method with the bundled Caffe VGG19 on real images (slow: CI runs them)."""

import re
import shlex
import subprocess
import sys

import pytest
from conftest import ASSETS, ROOT, script_env

from nst import stylize
from nst.evaluate import StyleEvaluator
from nst.image import from_pil, load_image

pytestmark = pytest.mark.slow


def test_basic_moves_a_real_photo_towards_the_painting():
    content = load_image(ASSETS / "images/content/chicago.jpg", 128)
    style = load_image(ASSETS / "images/style/candy.jpg")
    output = from_pil(
        stylize(content, style, size=128, iterations=40, loss_net={"weights": "caffe"})
    )
    evaluator = StyleEvaluator()
    before, after = evaluator(content, content, style), evaluator(output, content, style)
    assert after["style"] < 0.5 * before["style"]
    assert after["content"] < 1.0  # still the same scene


def test_luminance_only_transfer_keeps_the_photo_colours_on_real_images():
    from nst.image import rgb_to_yiq

    content = load_image(ASSETS / "images/content/flowers.jpg", 96)
    style = load_image(ASSETS / "images/style/starry_night.jpg")
    output = from_pil(stylize(content, style, size=96, iterations=20, preserve_color="luminance"))
    chroma_error = (rgb_to_yiq(output)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs()
    assert chroma_error.mean() < 0.01


def test_the_readme_main_job_runs_offline(tmp_path):
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^python stylize\.py input=sample:\S+ .*$", readme, re.MULTILINE).group(0)
    arguments = shlex.split(command)[2:]
    result = subprocess.run(
        [sys.executable, str(ROOT / "stylize.py"), *arguments],
        cwd=tmp_path,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    (output,) = tmp_path.glob("*.png")
    assert load_image(output).shape[-1] == 256
