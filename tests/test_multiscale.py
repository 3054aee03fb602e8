"""Multi-scale optimisation (`method.scales`) for basic and improved, and its bad inputs."""

import pytest
import pytorch_lightning as pl
import torch
from conftest import load_script, pattern

from nst.api import compose_config, method_config
from nst.errors import UserError
from nst.losses import build_loss
from nst.methods import basic
from nst.methods.basic import optimize_image
from nst.methods.improved import build_improved_loss
from nst.methods.scales import is_out_of_memory, scale_sizes

stylize_script = load_script("stylize")


class SizeRecorder(pl.Callback):
    """The image size at the start of every fit (one fit per scale)."""

    def __init__(self):
        self.sizes = []

    def on_fit_start(self, trainer, module):
        self.sizes.append(tuple(module.image.shape[-2:]))


def config(method, *overrides):
    cfg = compose_config("stylize", [f"method={method}", "loss_net.weights=random", *overrides])
    return method_config(cfg), cfg.loss_net


@pytest.mark.parametrize(
    "scales, expected",
    [
        (None, [1024]),
        (1, [1024]),
        (3, [256, 512, 1024]),
        ([256, 512], [256, 512, 1024]),
        ([300, 1024], [300, 1024]),
    ],
)
def test_scale_schedule(scales, expected):
    assert scale_sizes(scales, 1024) == expected


@pytest.mark.parametrize(
    "scales, message",
    [
        ("fast", "Unknown method.scales 'fast'"),
        (2.5, "Unknown method.scales"),
        (True, "Unknown method.scales"),
        (0, "at least 1"),
        ([512, 256], "must increase"),
        ([256, 256], "must increase"),
        ([256, "x"], "positive whole numbers"),
        ([], "positive whole numbers"),
        ([512, 2048], "beyond the output size 1024 px"),
        (8, "below the smallest usable 16 px"),
        ([8, 64], "below the smallest usable 16 px"),
    ],
)
def test_unknown_or_bad_schedules_are_user_errors(scales, message):
    with pytest.raises(UserError, match=message):
        scale_sizes(scales, 1024)


BUILDERS = [("basic", build_loss), ("improved", build_improved_loss)]


@pytest.mark.parametrize("method, build", BUILDERS)
def test_multiscale_ends_at_the_requested_size(method, build):
    settings, loss_net = config(method, "size=64", "method.scales=[24,40]", "method.iterations=2")
    recorder = SizeRecorder()
    output = optimize_image(
        pattern(30, 40, seed=1),
        [pattern(40, 40, seed=2)],
        settings,
        loss_net,
        progress=False,
        callbacks=[recorder],
        build=build,
    )
    assert recorder.sizes == [(18, 24), (30, 40), (48, 64)]
    assert output.shape == (1, 3, 48, 64)
    assert output.min() >= 0 and output.max() <= 1


def test_octaves_and_snapshots_count_steps_over_all_scales(tmp_path):
    settings, loss_net = config(
        "basic", "size=64", "method.scales=2", "method.iterations=2", "method.save_every=1"
    )
    written = []

    def snapshot_path(step):
        written.append(step)
        return tmp_path / f"step{step}.png"

    output = optimize_image(
        pattern(64, 64, seed=1),
        [pattern(40, 40, seed=2)],
        settings,
        loss_net,
        snapshot_path=snapshot_path,
        progress=False,
    )
    assert output.shape[-1] == 64
    assert written == [1, 2, 3]  # step 4 is the final output itself


def test_out_of_memory_at_a_scale_names_the_size(monkeypatch, tmp_path, capsys):
    real_fit = basic.fit

    def fit_until_too_big(module, *args):
        if module.image.shape[-1] > 32:
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 4GB")
        real_fit(module, *args)

    monkeypatch.setattr(basic, "fit", fit_until_too_big)
    content = tmp_path / "content.png"
    basic.save_image(pattern(48, 64, seed=1), content)
    output = tmp_path / "out.png"
    with pytest.raises(SystemExit) as exit_info:
        stylize_script.main(
            compose_config(
                "stylize",
                [
                    "loss_net.weights=random",
                    "size=64",
                    "method.scales=[32]",
                    "method.iterations=1",
                    f"input={content}",
                    "style=sample:waves",
                    f"output={output}",
                ],
            )
        )
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert stderr == [
        "error: Out of memory optimising a 64×48 px image on cpu; use a smaller size "
        "(or method.scales ending lower), or a device with more memory."
    ]
    assert not output.exists()


def test_cuda_out_of_memory_is_a_user_error(monkeypatch):
    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(basic, "fit", out_of_memory)
    settings, loss_net = config("improved", "size=40")
    with pytest.raises(UserError, match="Out of memory optimising a 40×30 px image"):
        optimize_image(pattern(30, 40, seed=1), [pattern(40, 40, seed=2)], settings, loss_net)


def test_a_scale_too_small_for_vgg_is_a_user_error():
    settings, loss_net = config("basic", "size=64", "method.scales=[16]")
    with pytest.raises(UserError, match="A 16×12 px image is too small"):
        optimize_image(pattern(48, 64, seed=1), [pattern(40, 40, seed=2)], settings, loss_net)


def test_other_runtime_errors_are_not_taken_for_out_of_memory():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("not enough memory"))


def test_unknown_schedule_from_the_command_line_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        stylize_script.main(
            compose_config(
                "stylize",
                [
                    "method=improved",
                    "loss_net.weights=random",
                    "method.scales=lots",
                    "input=sample:chelsea",
                    "style=sample:waves",
                    f"output={tmp_path / 'o.png'}",
                ],
            )
        )
    assert exit_info.value.code == 2
    assert "Unknown method.scales 'lots'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_peak_gpu_memory_is_reported_per_scale(capsys):
    settings, loss_net = config("improved", "size=64", "method.scales=2", "method.iterations=2")
    optimize_image(
        pattern(48, 64, seed=1),
        [pattern(40, 40, seed=2)],
        settings,
        loss_net,
        device="cuda",
        build=build_improved_loss,
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if "peak GPU memory" in line]
    assert [line.split(":")[1].strip() for line in lines] == ["32×24 px", "64×48 px"]
