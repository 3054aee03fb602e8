from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from conftest import pattern
from omegaconf import OmegaConf

from nst.api import compose_config, method_config
from nst.errors import UserError
from nst.image import luminance, rgb_to_yiq
from nst.losses import build_loss
from nst.methods.basic import BasicStyle, StopWhenConverged, initial_image, optimize_image
from nst.vgg import LossNetwork


def basic_config(*overrides):
    cfg = compose_config("stylize", ["loss_net.weights=random", *overrides])
    return method_config(cfg), cfg.loss_net


def test_basic_config_has_every_seed_knob():
    method, loss_net = basic_config()  # with the top-level size and preserve_color filled in
    assert loss_net.arch == "vgg19"
    for knob in (
        "content_weight",
        "style_weight",
        "tv_weight",
        "size",
        "content_layers",
        "style_layers",
        "pooling",
        "init",
        "preserve_color",
        "iterations",
        "optimizer",
        "save_every",
    ):
        assert knob in method
    assert method.pooling == "max" and method.preserve_color == "none" and method.init == "content"
    assert len(method.style_layers) == 5 and len(method.content_layers) == 1


def test_the_image_is_the_only_parameter(random_vgg19, content_image, style_image):
    method, _ = basic_config()
    loss = build_loss(method, random_vgg19)
    loss.set_content(content_image)
    loss.set_style([style_image])
    module = BasicStyle(loss, content_image)
    assert [name for name, _ in module.named_parameters()] == ["image"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_basic_lowers_its_total_loss_on_a_64px_pair(optimizer):
    method, loss_net = basic_config(
        "size=64", "method.iterations=15", f"method.optimizer={optimizer}", "method.init=noise"
    )
    # A smooth style far from the noise start, so the style term has real work to do.
    content, style = pattern(48, 64, seed=1), pattern(64, 64, seed=2)  # already at size 64
    loss = build_loss(method, LossNetwork("vgg19", "random"))
    loss.set_content(content)
    loss.set_style([style])
    before = loss(initial_image("noise", content, [style], seed=0))["total"]
    output = optimize_image(content, [style], method, loss_net, progress=False)
    assert output.shape == (1, 3, 48, 64)
    assert output.min() >= 0 and output.max() <= 1
    assert loss(output)["total"] < 0.2 * before


def test_several_styles_with_blend_weights_and_snapshots(tmp_path, content_image, style_image):
    method, loss_net = basic_config("size=32", "method.iterations=4", "method.save_every=2")
    snapshots = []

    def snapshot_path(step):
        snapshots.append(step)
        return tmp_path / f"step{step}.png"

    output = optimize_image(
        content_image,
        [style_image, style_image.flip(-1)],
        method,
        loss_net,
        style_weights=[0.3, 0.7],
        snapshot_path=snapshot_path,
        progress=False,
    )
    assert output.shape[-1] == 32
    assert snapshots == [2] and (tmp_path / "step2.png").exists()
    with pytest.raises(UserError, match="2 style images but 1 style_weights"):
        optimize_image(
            content_image, [style_image] * 2, method, loss_net, style_weights=[1.0], progress=False
        )


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_color_preservation_runs_end_to_end(mode, content_image, style_image):
    method, loss_net = basic_config("size=32", "method.iterations=3", f"preserve_color={mode}")
    output = optimize_image(content_image, [style_image], method, loss_net, progress=False)
    if mode == "luminance":
        content = torch.nn.functional.interpolate(
            content_image, size=output.shape[-2:], mode="bicubic", antialias=True
        ).clamp(0, 1)
        chroma_error = (rgb_to_yiq(output)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs()
        assert (chroma_error < 0.005).float().mean() > 0.9  # exact except where RGB clips
        assert not torch.allclose(luminance(output), luminance(content), atol=1e-3)
    else:  # the style is recoloured to the photo's colours first: another target, another image
        method.preserve_color = "none"
        plain = optimize_image(content_image, [style_image], method, loss_net, progress=False)
        assert (output - plain).abs().max() > 1e-3


def test_init_from_file(tmp_path, content_image, style_image):
    from nst.image import save_image

    init = save_image(torch.zeros(1, 3, 10, 10), tmp_path / "init.png")
    method, loss_net = basic_config("size=32", "method.iterations=1", f"method.init={init}")
    method.lr = 1e-9
    method.optimizer = "adam"
    output = optimize_image(content_image, [style_image], method, loss_net, progress=False)
    assert output.abs().max() < 1e-3  # one tiny Adam step away from the black init


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.iterations=0", "iterations must be a positive"),
        ("size=-5", "size must be a positive"),
        ("method.style_weight=0", "style_weight must be positive"),
        ("method.content_weight=-1", "content_weight must be positive"),
        ("method.tv_weight=-1", "tv_weight"),
        ("method.optimizer=sgd", "optimizer"),
        ("method.style_layers=[relu9_9]", "relu9_9"),
        ("device=tpu", "device"),
        ("method.tolerance=1.5", "tolerance must be a number in"),
    ],
)
def test_bad_settings_are_user_errors(override, message, content_image, style_image):
    method, loss_net = basic_config(override)
    cfg_device = OmegaConf.select(compose_config("stylize", [override]), "device")
    with pytest.raises(UserError, match=message):
        optimize_image(
            content_image, [style_image], method, loss_net, device=cfg_device, progress=False
        )


def test_ctrl_c_stays_an_interrupt_and_the_command_writes_nothing(content_image, style_image):
    import pytorch_lightning as pl

    from nst.errors import exit_on_user_error

    class PressCtrlC(pl.Callback):
        def on_train_batch_end(self, *args):
            raise KeyboardInterrupt

    method, loss_net = basic_config("size=32", "method.iterations=5")

    @exit_on_user_error
    def command():
        optimize_image(
            content_image, [style_image], method, loss_net, progress=False, callbacks=[PressCtrlC()]
        )
        raise AssertionError("the image would have been written")

    with pytest.raises(SystemExit) as exit_info:
        command()  # Lightning exits 1 on Ctrl-C inside fit; the CLI wrapper makes that 130
    assert exit_info.value.code == 130


class StepCounter(pl.Callback):
    def __init__(self):
        self.steps = 0

    def on_train_batch_end(self, *args) -> None:
        self.steps += 1


def test_the_stopping_rule_ends_a_converged_run_and_not_a_falling_one(capsys):
    method, loss_net = basic_config("size=48", "method.iterations=80", "method.init=noise")
    content, style = pattern(36, 48, seed=1), pattern(48, 48, seed=2)
    runs = {}
    for tolerance in (1e-2, 0):
        method.tolerance = tolerance
        counter = StepCounter()
        optimize_image(content, [style], method, loss_net, progress=False, callbacks=[counter])
        runs[tolerance] = counter.steps
    assert runs[0] == 80  # tolerance 0: every iteration
    assert 10 < runs[1e-2] < 80  # stopped early, but only once the window is full
    # The rule itself: a loss still falling 5% per step goes on; a flat one stops, and says so.
    trainer = SimpleNamespace(should_stop=False, global_step=0, max_steps=100)
    rule = StopWhenConverged(tolerance=1e-3, window=5)
    for step, loss in enumerate([0.95**n for n in range(20)] + [0.358] * 6, start=1):
        trainer.global_step = step
        rule.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)})
        assert trainer.should_stop == (step == 26), step  # the window: 5 flat steps
    rule.on_train_end(trainer, None)
    assert "converged at iteration 26 of 100" in capsys.readouterr().err


def test_the_matched_start_is_the_photo_in_the_styles_colours():
    content, style = pattern(36, 48, seed=1), pattern(48, 48, seed=2) * 0.5 + 0.2
    start = initial_image("matched", content, [style], seed=0)
    assert start.shape == content.shape
    style_mean, start_mean = style.mean(dim=(2, 3)), start.mean(dim=(2, 3))
    assert (start_mean - style_mean).abs().max() < 0.02  # the style's colours …
    assert (content.mean(dim=(2, 3)) - style_mean).abs().max() > 0.05
    luminance_change = luminance(start) - luminance(start).mean()
    photo_change = luminance(content) - luminance(content).mean()
    correlation = (luminance_change * photo_change).mean() / (
        luminance_change.std() * photo_change.std()
    )
    assert correlation > 0.8  # … on the photo's structure


def test_bf16_runs_the_vgg_in_bf16_and_returns_fp32_activations(content_image):
    seen = []
    network = LossNetwork("vgg19", "random", precision="bf16")
    network.layers.conv2_1.register_forward_hook(lambda layer, args, out: seen.append(out.dtype))
    reference = LossNetwork("vgg19", "random")(content_image, ["relu2_1"])["relu2_1"]
    features = network(content_image, ["relu2_1"])["relu2_1"]
    assert seen == [torch.bfloat16] and features.dtype == torch.float32
    error = (features - reference).norm() / reference.norm()
    assert 1e-4 < error < 2e-2  # rounded to bf16's 8 bits, not computed in fp32
    with pytest.raises(UserError, match="Unknown precision 'int8'"):
        LossNetwork("vgg19", "random", precision="int8")


BF16_TOLERANCE = 0.05  # relative change of either evaluator distance, bf16 against fp32


@pytest.mark.slow  # bf16 is emulated on CPUs without AVX-512 BF16: about 40 s here
def test_bf16_and_fp32_optimisations_reach_the_same_distances(monkeypatch, capsys):
    """20 L-BFGS iterations with the VGG passes under bf16 autocast land within
    `BF16_TOLERANCE` of the fp32 run on both evaluator distances (random VGG weights)."""
    import nst.methods.common
    from nst.evaluate import StyleEvaluator

    content, style = pattern(32, 32, seed=1), pattern(32, 32, seed=2)
    method, loss_net = basic_config("size=32", "method.iterations=20", "method.tolerance=0")
    outputs = {}
    monkeypatch.setattr(nst.methods.common, "native_on_cpu", lambda precision: precision == "fp32")
    for precision in ("fp32", "bf16"):
        outputs[precision] = optimize_image(
            content, [style], method, loss_net, device="cpu", progress=False, precision=precision
        )
    assert "this CPU has no native bf16 arithmetic" in capsys.readouterr().err
    evaluator = StyleEvaluator(weights="random")
    scores = {name: evaluator(image, content, style) for name, image in outputs.items()}
    assert scores["fp32"]["style"] < evaluator(content, content, style)["style"]  # it did work
    for distance in ("content", "style"):
        change = abs(scores["bf16"][distance] / scores["fp32"][distance] - 1)
        assert change < BF16_TOLERANCE, (distance, scores)


def test_each_iteration_runs_the_vgg_once_and_the_targets_are_encoded_once(monkeypatch):
    calls = []
    forward = LossNetwork.forward

    def counted(self, image, layers):
        calls.append(image.requires_grad)
        return forward(self, image, layers)

    monkeypatch.setattr(LossNetwork, "forward", counted)
    method, loss_net = basic_config("size=32", "method.iterations=7", "method.tolerance=0")
    styles = [pattern(32, 32, seed=2), pattern(24, 32, seed=3)]
    optimize_image(pattern(32, 32, seed=1), styles, method, loss_net, progress=False)
    targets = [call for call in calls if not call]
    assert len(targets) == 1 + len(styles)  # the photo once, each style once
    assert len(calls) - len(targets) == 7  # one forward (and backward) of the image per step
