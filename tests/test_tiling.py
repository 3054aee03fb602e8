"""Tiled stylisation equals the untiled forward: whole-image instance-norm and CIN statistics,
halos, reflection padding, stride-2 and upsampling alignment, at odd sizes."""

import os

import pytest
import torch
from torch import nn

from nst.errors import UserError
from nst.networks import ConditionalTransformNet, TransformNet
from nst.tiling import (
    forward_within_memory,
    network_stages,
    parse_memory,
    plan_tiles,
    tiled_forward,
)

EXACT = 1e-3  # float32 storage: the target; float rounding gives ~1e-5


def trained_looking(network: nn.Module, seed: int = 1) -> nn.Module:
    """Random weights at a trained network's scale: norm γ in [0.5, 2], β ~ N(0, 0.5²), batch-norm
    running statistics away from (0, 1), and an output layer whose values span [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.GroupNorm | nn.BatchNorm2d) and module.weight is not None:
                module.weight.copy_(
                    torch.rand(module.weight.shape, generator=generator) * 1.5 + 0.5
                )
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.5)
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.3, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
        convs = [module for module in network.modules() if isinstance(module, nn.Conv2d)]
        convs[-1].weight.mul_(8)
        if isinstance(network, ConditionalTransformNet):
            network.style_params.weight.mul_(30)  # γ_s, β_s spread well away from (1, 0)
    return network.eval()


SMALL = {"channels": 8, "residual_blocks": 2}  # the same layers, thinner: quick tests


def fast_network(scale: str, **settings) -> TransformNet:
    torch.manual_seed(0)
    network = TransformNet(**{**SMALL, **settings}).eval()
    return trained_looking(network) if scale == "trained" else network


def arbitrary_network(scale: str, **settings) -> ConditionalTransformNet:
    torch.manual_seed(0)
    network = ConditionalTransformNet(**{**SMALL, **settings}).eval()
    return trained_looking(network) if scale == "trained" else network


def max_difference(first: torch.Tensor, second: torch.Tensor) -> float:
    return (first - second).abs().max().item()


def test_full_size_networks_tile_exactly():
    """The paper-size networks (32 channels, 5 residual blocks) at an odd size."""
    settings = {"channels": 32, "residual_blocks": 5}
    image = torch.rand(1, 3, 97, 131, generator=torch.Generator().manual_seed(5))
    embedding = torch.randn(1, 100, generator=torch.Generator().manual_seed(6))
    fast, arbitrary = fast_network("trained", **settings), arbitrary_network("trained", **settings)
    with torch.no_grad():
        expected_fast, expected_arbitrary = fast(image), arbitrary(image, embedding)
    assert max_difference(tiled_forward(fast, image, tile=48), expected_fast) < EXACT
    tiled = tiled_forward(arbitrary, image, embedding, tile=48)
    assert max_difference(tiled, expected_arbitrary) < EXACT


@pytest.mark.parametrize(
    "scale, height, width, tile",
    [("random", 97, 131, 40), ("trained", 250, 333, 96), ("trained", 37, 29, 7)],
)
def test_tiled_fast_network_equals_untiled(scale, height, width, tile):
    network = fast_network(scale)
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height))
    with torch.no_grad():
        expected = network(image)
    tiled = tiled_forward(network, image, storage="float32", tile=tile)
    assert tiled.shape == expected.shape
    assert max_difference(tiled, expected) < EXACT


@pytest.mark.parametrize("scale, encoder_norm", [("trained", "batch"), ("random", "instance")])
def test_tiled_arbitrary_network_equals_untiled_per_image_style(scale, encoder_norm):
    network = arbitrary_network(scale, encoder_norm=encoder_norm)
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 97, 131, generator=generator)
    embedding = torch.randn(2, 100, generator=generator)  # each image its own style
    with torch.no_grad():
        expected = network(image, embedding)
    tiled = tiled_forward(network, image, embedding, storage="float32", tile=36)
    assert max_difference(tiled, expected) < EXACT


def test_one_embedding_styles_the_whole_batch():
    network = arbitrary_network("trained")
    image = torch.rand(2, 3, 50, 45)
    embedding = torch.randn(1, 100)
    with torch.no_grad():
        expected = network(image, embedding.expand(2, -1))
    assert max_difference(tiled_forward(network, image, embedding, tile=24), expected) < EXACT


@pytest.mark.parametrize("settings", [{"upsample": "transpose"}, {"norm": "batch"}])
def test_paper_variants_tile_exactly(settings):
    network = fast_network("trained", **settings)
    image = torch.rand(1, 3, 61, 83)
    with torch.no_grad():
        expected = network(image)
    tiled = tiled_forward(network, image, storage="float32", tile=20)
    assert max_difference(tiled, expected) < EXACT


def test_statistics_are_whole_image_not_per_tile():
    """The failure tiling is known for: normalising each tile on its own changes the image."""
    network = fast_network("trained")
    image = torch.rand(1, 3, 64, 64)
    image[..., :32] *= 0.2  # a dark half: its tiles' own statistics differ from the image's
    with torch.no_grad():
        expected = network(image)
        per_tile = torch.cat([network(image[..., :32]), network(image[..., 32:])], dim=-1)
    assert max_difference(per_tile, expected) > 0.05
    assert max_difference(tiled_forward(network, image, tile=32), expected) < EXACT


def test_a_tiny_budget_tiles_and_stays_exact():
    network = fast_network("trained")
    height, width = 97, 131
    budget = parse_memory("2MB")
    plan = plan_tiles(network_stages(network).stages, height, width, budget)
    assert plan.tile < 50 and plan.buffer_bytes + plan.work_bytes <= budget
    image = torch.rand(1, 3, height, width)
    with torch.no_grad():
        expected = network(image)
    tiled = tiled_forward(network, image, max_memory=budget)
    assert max_difference(tiled, expected) < EXACT


def test_a_budget_too_small_for_one_tile_is_one_sentence():
    network = fast_network("random")
    with pytest.raises(UserError, match=r"too small for even one 16×16 tile.*at least max_memory="):
        tiled_forward(network, torch.rand(1, 3, 40, 40), max_memory="100KB")


@pytest.mark.parametrize("storage", ["float16", "disk"])
def test_sixteen_bit_storage_costs_little(storage, tmp_path):
    """Float16 whole-image activations: statistics still exact, stored values rounded."""
    network = fast_network("trained")
    image = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        expected = network(image)
    tiled = tiled_forward(network, image, storage=storage, tile=40, temporary_directory=tmp_path)
    difference = (tiled - expected).abs()
    assert difference.max() < 0.03 and difference.mean() < 1e-3
    assert os.listdir(tmp_path) == []  # the mapped files were unlinked


def test_disk_storage_in_float32_is_exact(tmp_path):
    network = arbitrary_network("trained")
    image, embedding = torch.rand(1, 3, 97, 131), torch.randn(1, 100)
    with torch.no_grad():
        expected = network(image, embedding)
    tiled = tiled_forward(
        network, image, embedding, storage="disk-float32", tile=32, temporary_directory=tmp_path
    )
    assert max_difference(tiled, expected) < EXACT


def test_a_full_disk_is_one_sentence(monkeypatch, tmp_path):
    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(UserError, match="temporary disk space"):
        tiled_forward(
            fast_network("random"),
            torch.rand(1, 3, 40, 40),
            storage="disk",
            temporary_directory=tmp_path,
        )


def test_progress_counts_every_tile_once():
    calls = []
    tiled_forward(
        fast_network("random"),
        torch.rand(1, 3, 45, 50),
        tile=16,
        progress=lambda done, total: calls.append((done, total)),
    )
    total = calls[-1][1]
    assert [done for done, _ in calls] == list(range(1, total + 1))
    assert all(count == total for _, count in calls)


def test_forward_within_memory_runs_untiled_when_it_fits_and_tiles_when_not():
    network = fast_network("trained")
    image = torch.rand(1, 3, 120, 150)
    with torch.no_grad():
        expected = network(image)
    assert torch.equal(forward_within_memory(network, image, max_memory="1GiB"), expected)
    assert max_difference(forward_within_memory(network, image, max_memory="2MB"), expected) < EXACT


def test_batch_norm_in_training_mode_is_refused():
    network = fast_network("random", norm="batch").train()
    with pytest.raises(UserError, match=r"eval mode"):
        tiled_forward(network, torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize(
    "text, size",
    [("4GiB", 4 * 1024**3), ("2.5GB", 2_500_000_000), ("800MB", 800_000_000), (1234, 1234)],
)
def test_memory_sizes_parse(text, size):
    assert parse_memory(text) == size


def test_a_memory_size_that_is_not_one_is_one_sentence():
    with pytest.raises(UserError, match="is not a size"):
        parse_memory("lots")


def test_stylize_with_a_small_budget_tiles_and_writes_the_same_picture(tmp_path, capfd):
    """stylize.py max_memory=…: a zoo-like checkpoint over budget runs tiled (a progress bar on
    stderr) and writes what the untiled run writes."""
    from conftest import load_script, tiny_fast_checkpoint

    from nst.api import compose_config
    from nst.image import load_image, save_image

    stylize = load_script("stylize")
    checkpoint = tiny_fast_checkpoint(tmp_path / "tiny.ckpt")
    photo = tmp_path / "photo.png"
    save_image(torch.rand(1, 3, 61, 83), photo)
    for name, budget in (("whole", "1GiB"), ("tiled", "300KB")):
        arguments = [f"ckpt={checkpoint}", f"input={photo}", f"output={tmp_path / name}.png"]
        # fp32, where tiling is exact (precision=auto may pick bf16, whose tiles run autocast)
        arguments += ["precision=fp32", f"max_memory={budget}"]
        stylize.main(compose_config("stylize", arguments))
    assert "Stylizing tiles" in capfd.readouterr().err
    whole, tiled = load_image(tmp_path / "whole.png"), load_image(tmp_path / "tiled.png")
    assert max_difference(whole, tiled) < 1.5 / 255  # one 8-bit level at most
