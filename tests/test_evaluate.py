import pytest
import torch
from conftest import pattern

from nst.evaluate import StyleEvaluator


def test_evaluator_is_zero_on_its_targets_and_positive_elsewhere():
    evaluator = StyleEvaluator(weights="random")
    content, style = pattern(48, 64, seed=1), pattern(64, 64, seed=2)
    on_content = evaluator(content, content, style)
    assert on_content["content"] == 0 and on_content["style"] > 0
    assert on_content["ssim"] == pytest.approx(1.0)
    on_style = evaluator(style, content, style)
    assert on_style["style"] < 1e-6 and on_style["content"] > 0
    assert on_style["ssim"] < 0.9  # another picture: less of the photo's structure
    # The content image is compared at the output's size.
    smaller = evaluator(torch.nn.functional.interpolate(content, size=(24, 32)), content, style)
    assert smaller["content"] < on_style["content"]
