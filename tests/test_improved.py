"""The improved method (Novak & Nikulin 2016): its pieces, its switches, and its bad inputs."""

import pytest
import torch
from conftest import ASSETS, load_script, pattern

from nst.api import compose_config, method_config
from nst.errors import UserError
from nst.image import load_image, rgb_to_yiq
from nst.losses import (
    ImprovedPerceptualLoss,
    build_loss,
    chain_link_weights,
    geometric_layer_weights,
    upsample_nearest,
)
from nst.methods.basic import initial_image, optimize_image
from nst.methods.improved import ALL_VGG19_LAYERS, build_improved_loss, improved_layers
from nst.vgg import LossNetwork

stylize_script = load_script("stylize")
SWITCHES_OFF = [
    "method.geometric_weights=false",
    "method.all_layers=false",
    "method.activation_shift=false",
    "method.correlation_chain=false",
]


def improved_config(*overrides):
    cfg = compose_config("stylize", ["method=improved", "loss_net.weights=random", *overrides])
    return method_config(cfg), cfg.loss_net


def tiny_pair():
    """A content, a style and an image to score, small enough for random-VGG tests."""
    return pattern(48, 64, seed=1), pattern(64, 64, seed=2), torch.rand(1, 3, 48, 64)


def targets_set(loss, content, style):
    loss.set_content(content)
    loss.set_style([style])
    return loss


def test_geometric_weight_formula(random_vgg19):
    # §3.1: w_s = 2^(D−d), w_c = 2^d, normalised to sum to one.
    assert geometric_layer_weights(["a", "b", "c"], rising=False) == {
        "a": 4 / 7,
        "b": 2 / 7,
        "c": 1 / 7,
    }
    assert geometric_layer_weights(["a", "b", "c"], rising=True) == {
        "a": 2 / 14,
        "b": 4 / 14,
        "c": 8 / 14,
    }
    method, _ = improved_config()
    content, style = improved_layers(method, random_vgg19)
    assert list(style) == list(content) == ALL_VGG19_LAYERS and len(style) == 16
    assert style["relu1_1"] / style["relu5_4"] == 2**15
    assert content["relu5_4"] / content["relu1_1"] == 2**15
    for shallow, deep in zip(ALL_VGG19_LAYERS, ALL_VGG19_LAYERS[1:], strict=False):
        assert style[shallow] == pytest.approx(2 * style[deep])
    assert sum(style.values()) == pytest.approx(1) and sum(content.values()) == pytest.approx(1)


def test_chain_link_weights_take_the_deeper_layers_weight():
    geometric = geometric_layer_weights(ALL_VGG19_LAYERS, rising=False)
    links = chain_link_weights(geometric)
    assert len(links) == 15
    assert list(links)[0] == ("relu1_1", "relu1_2") and list(links)[-1] == ("relu5_3", "relu5_4")
    weights = list(links.values())  # §3.5: link l weighs 2^(D−d(l)), halving along the chain
    assert all(a == pytest.approx(2 * b) for a, b in zip(weights, weights[1:], strict=False))
    assert sum(weights) == pytest.approx(1)
    assert chain_link_weights({"a": 0.2, "b": 0.2, "c": 0.2}) == {
        ("a", "b"): pytest.approx(0.3),
        ("b", "c"): pytest.approx(0.3),
    }


def test_correlation_chain_shapes_for_every_layer_pair(random_vgg19):
    loss = ImprovedPerceptualLoss(
        random_vgg19,
        {"relu4_2": 1.0},
        dict.fromkeys(ALL_VGG19_LAYERS, 1.0),
        shift=-1.0,
        correlation_chain=True,
    )
    image = torch.rand(2, 3, 40, 56)  # odd sizes after pooling: 5×7 → 2×3 at block 5
    features = random_vgg19(image, ALL_VGG19_LAYERS)
    chain = loss.style_representation(features)
    pairs = list(zip(ALL_VGG19_LAYERS, ALL_VGG19_LAYERS[1:], strict=False))
    assert list(chain) == [f"{shallow}-{deep}" for shallow, deep in pairs]
    for shallow, deep in pairs:
        channels = (features[shallow].shape[1], features[deep].shape[1])
        assert chain[f"{shallow}-{deep}"].shape == (2, *channels)
    # Across a pooling boundary the deeper map is upsampled to the shallower map's positions,
    # both shifted by s = −1 (here 5×7 → 2×3: pooling dropped the last row and column).
    shallow, deep = features["relu4_4"] - 1, features["relu5_1"] - 1
    upsampled = upsample_nearest(deep, shallow.shape[-2:])
    expected = torch.einsum("bihw,bjhw->bij", shallow, upsampled) / (5 * 7)
    torch.testing.assert_close(chain["relu4_4-relu5_1"], expected)


def test_switches_off_give_exactly_the_basic_loss(random_vgg19):
    improved, _ = improved_config(*SWITCHES_OFF)
    basic = method_config(compose_config("stylize", ["method=basic"]))
    # improved.yaml takes every basic knob from basic.yaml (weights, layers, optimiser, …).
    assert {key: improved[key] for key in basic if key != "name"} == {
        key: basic[key] for key in basic if key != "name"
    }
    content, style, image = tiny_pair()
    ours = targets_set(build_improved_loss(improved, random_vgg19), content, style)(image)
    theirs = targets_set(build_loss(basic, random_vgg19), content, style)(image)
    for name in ("content", "style", "tv", "total"):
        assert torch.equal(ours[name], theirs[name]), name


@pytest.mark.parametrize("switch", SWITCHES_OFF)
def test_each_switch_alone_changes_the_style_or_content_loss(switch, random_vgg19):
    content, style, image = (
        pattern(48, 64, seed=1),
        pattern(64, 64, seed=2),
        torch.rand(1, 3, 48, 64),
    )
    off, _ = improved_config(*SWITCHES_OFF)
    alone, _ = improved_config(*[item for item in SWITCHES_OFF if item != switch])
    baseline = targets_set(build_improved_loss(off, random_vgg19), content, style)(image)
    changed = targets_set(build_improved_loss(alone, random_vgg19), content, style)(image)
    assert not torch.allclose(baseline["style"], changed["style"])


def test_improved_lowers_its_own_loss_on_a_64px_pair(random_vgg19):
    method, loss_net = improved_config("size=64", "method.iterations=10", "method.init=noise")
    content, style = pattern(48, 64, seed=1), pattern(64, 64, seed=2)  # style far from noise
    loss = targets_set(build_improved_loss(method, random_vgg19), content, style)
    before = loss(initial_image("noise", content, [style], seed=0))["total"]
    output = optimize_image(
        content, [style], method, loss_net, progress=False, build=build_improved_loss
    )
    assert output.shape == (1, 3, 48, 64)
    assert loss(output)["total"] < 0.3 * before


def test_blurred_correlations_blur_once_per_conv_layer_between(random_vgg19):
    method, _ = improved_config(
        "method.all_layers=false", "method.blur_correlations=true", "method.chain_upsample=bilinear"
    )
    loss = build_improved_loss(method, random_vgg19)
    assert loss.blur_steps == {
        ("relu1_1", "relu2_1"): 2,
        ("relu2_1", "relu3_1"): 2,
        ("relu3_1", "relu4_1"): 4,
        ("relu4_1", "relu5_1"): 4,
    }
    sharp, _ = improved_config("method.all_layers=false", "method.chain_upsample=bilinear")
    image = torch.rand(1, 3, 32, 32)
    features = random_vgg19(image, loss.style_layers)
    blurred = loss.style_representation(features)
    plain = build_improved_loss(sharp, random_vgg19).style_representation(features)
    assert not torch.allclose(blurred["relu1_1-relu2_1"], plain["relu1_1-relu2_1"])


def test_luminance_preservation_works_with_improved(content_image, style_image):
    method, loss_net = improved_config("size=32", "method.iterations=3", "preserve_color=luminance")
    output = optimize_image(
        content_image, [style_image], method, loss_net, progress=False, build=build_improved_loss
    )
    content = torch.nn.functional.interpolate(
        content_image, size=output.shape[-2:], mode="bicubic", antialias=True
    ).clamp(0, 1)
    chroma_error = (rgb_to_yiq(output)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs()
    assert (chroma_error < 0.005).float().mean() > 0.9


@pytest.mark.parametrize(
    "overrides, arch, message",
    [
        ([], "vgg16", "method.all_layers uses the 16 conv layers of VGG19"),
        (["method.blur_correlations=true", "method.correlation_chain=false"], "vgg19", "blur"),
        (
            ["method.style_layer_weights=[1,1,1,1,1]", "method.all_layers=false"],
            "vgg19",
            "geometric_weights sets the layer weights",
        ),
        (["method.shift=abc"], "vgg19", "method.shift must be a number"),
        (["method.activation_shift=maybe"], "vgg19", "activation_shift must be true or false"),
        (["method.chain_upsample=cubic"], "vgg19", "Unknown upsampling 'cubic'"),
        (
            ["method.all_layers=false", "method.style_layers=[relu1_1]"],
            "vgg19",
            "needs at least two style layers",
        ),
    ],
)
def test_bad_improved_settings_are_user_errors(overrides, arch, message):
    method, _ = improved_config(*overrides)
    with pytest.raises(UserError, match=message):
        build_improved_loss(method, LossNetwork(arch, "random"))


@pytest.mark.slow
def test_improved_transfers_style_on_real_images():
    from nst.evaluate import StyleEvaluator

    content = load_image(ASSETS / "images/content/chicago.jpg", 128)
    style = load_image(ASSETS / "images/style/starry_night.jpg", 128)
    cfg = compose_config("stylize", ["method=improved", "size=128", "method.iterations=40"])
    output = optimize_image(
        content,
        [style],
        method_config(cfg),
        cfg.loss_net,
        device="cpu",
        progress=False,
        build=build_improved_loss,
    )
    evaluator = StyleEvaluator()
    before, after = evaluator(content, content, style), evaluator(output, content, style)
    assert after["style"] < 0.5 * before["style"]
    assert after["content"] < 1.0


def test_improved_from_the_command_line_with_scales(tmp_path, image_files):
    content, style = image_files
    output = tmp_path / "out.png"
    stylize_script.main(
        compose_config(
            "stylize",
            [
                "method=improved",
                "loss_net.weights=random",
                "size=48",
                "method.scales=[32]",
                "method.iterations=2",
                f"input={content}",
                f"style={style}",
                f"output={output}",
            ],
        )
    )
    assert load_image(output).shape[-2:] == (40, 48)


def test_vgg16_with_all_layers_exits_2_with_one_sentence(tmp_path, image_files, capsys):
    content, style = image_files
    with pytest.raises(SystemExit) as exit_info:
        stylize_script.main(
            compose_config(
                "stylize",
                [
                    "method=improved",
                    "loss_net=vgg16",
                    "loss_net.weights=random",
                    "size=32",
                    f"input={content}",
                    f"style={style}",
                    f"output={tmp_path / 'out.png'}",
                ],
            )
        )
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: method.all_layers uses the 16 conv layers of VGG19 but the loss network is "
        "vgg16; use loss_net=vgg19 or method.all_layers=false."
    ]
    assert not (tmp_path / "out.png").exists()
