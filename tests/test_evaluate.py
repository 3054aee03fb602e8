import pytest
import torch
from conftest import pattern

from nst.evaluate import StyleDistances, StyleEvaluator


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


def test_the_metric_averages_the_evaluators_numbers_and_resets():
    generator = torch.Generator().manual_seed(0)
    output, content, style = (torch.rand(3, 3, 32, 40, generator=generator) for _ in range(3))
    evaluator, metric = StyleEvaluator(weights="random"), StyleDistances(weights="random")
    rows = [evaluator(output[i : i + 1], content[i : i + 1], style[i : i + 1]) for i in range(3)]
    metric.update(output[:2], content[:2], style[:2])  # a batch, then one more image
    metric.update(output[2:], content[2:], style[2:])
    means = metric.compute()
    for name in ("content", "style", "ssim"):
        assert float(means[name]) == pytest.approx(sum(row[name] for row in rows) / 3, rel=1e-5)
    metric.reset()
    metric.update(output[:1], content[:1], style[:1])
    assert float(metric.compute()["style"]) == pytest.approx(rows[0]["style"], rel=1e-5)
