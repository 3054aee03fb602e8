"""backend=onnxruntime: the same images as PyTorch, exported once and cached, bad uses refused."""

import sys

import pytest
import torch
from conftest import load_script, pattern, tiny_arbitrary_checkpoint, tiny_fast_checkpoint

from nst import backends
from nst.api import compose_config
from nst.errors import UserError
from nst.image import load_image
from nst.inference import batch_stylizer, load_stylizer

stylize_script = load_script("stylize")
CLOSE = 1e-4  # ONNX Runtime fuses and reorders float32 arithmetic


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """An empty ONNX cache per test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "nst" / "onnx"


def both_backends(source, images, **settings) -> tuple[torch.Tensor, torch.Tensor]:
    outputs = []
    for backend in ("torch", "onnxruntime"):
        stylizer = load_stylizer(source, backend=backend, **settings)
        outputs.append(batch_stylizer(stylizer, torch.device("cpu"))(images))
    return outputs[0], outputs[1]


def test_a_fast_network_gives_the_same_images_and_is_exported_once(tmp_path, cache, monkeypatch):
    checkpoint = tiny_fast_checkpoint(tmp_path / "fast.ckpt")
    images = torch.cat([pattern(37, 53, seed=0), pattern(37, 53, seed=1)])  # odd sizes, a batch
    expected, output = both_backends(checkpoint, images)
    assert output.shape == expected.shape and (output - expected).abs().max() < CLOSE
    (exported,) = cache.glob("*.onnx")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(backends, "export", no_export)
    again = load_stylizer(checkpoint, backend="onnxruntime")
    assert (batch_stylizer(again, torch.device("cpu"))(images) - expected).abs().max() < CLOSE
    assert list(cache.glob("*.onnx")) == [exported]


def test_an_arbitrary_network_gives_the_same_images(tmp_path):
    checkpoint = tiny_arbitrary_checkpoint(tmp_path / "arbitrary.ckpt")
    style = [pattern(48, 40, seed=5)]
    expected, output = both_backends(checkpoint, pattern(45, 31, seed=2), styles=style)
    assert (output - expected).abs().max() < CLOSE


def test_images_beyond_max_memory_still_run_tiled_in_pytorch(tmp_path, cache, monkeypatch):
    checkpoint = tiny_fast_checkpoint(tmp_path / "fast.ckpt")
    image = pattern(120, 150, seed=3)
    expected, output = both_backends(checkpoint, image, max_memory="600KB")
    assert (output - expected).abs().max() < CLOSE
    assert not list(cache.glob("*.onnx"))  # tiled: ONNX Runtime was never needed


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"backend": "tensorrt"}, "Unknown backend 'tensorrt'; use torch or onnxruntime."),
        ({"device": "cuda"}, "backend=onnxruntime runs on the CPU: add device=cpu"),
        ({"precision": "bf16"}, "backend=onnxruntime runs in fp32: drop precision=bf16."),
    ],
)
def test_bad_uses_are_one_sentence(tmp_path, settings, message):
    checkpoint = tiny_fast_checkpoint(tmp_path / "fast.ckpt")
    with pytest.raises(UserError, match=message):
        stylizer = load_stylizer(checkpoint, backend=settings.get("backend", "onnxruntime"))
        device = torch.device(settings.get("device", "cpu"))
        batch_stylizer(stylizer, device, settings.get("precision", "fp32"))


def test_a_missing_onnxruntime_names_the_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    stylizer = load_stylizer(tiny_fast_checkpoint(tmp_path / "fast.ckpt"), backend="onnxruntime")
    with pytest.raises(UserError, match="needs the onnxruntime package: pip install onnxruntime"):
        batch_stylizer(stylizer, torch.device("cpu"))(pattern(32, 32, seed=0))


def test_stylize_with_a_zoo_model_on_onnxruntime(tmp_path):
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        output = tmp_path / f"{backend}.png"
        arguments = ["model=wave", "input=sample:chelsea", "size=64", f"output={output}"]
        arguments += [f"backend={backend}", "precision=fp32"]  # auto may pick bf16 for torch
        stylize_script.main(compose_config("stylize", arguments))
        outputs[backend] = load_image(output)
    assert outputs["torch"].shape[-1] == 64
    assert (outputs["torch"] - outputs["onnxruntime"]).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("kind", ["fast", "arbitrary"])
def test_bf16_on_the_cpu_runs_a_bf16_copy_of_the_network_close_to_fp32(tmp_path, kind):
    """precision=bf16 on the CPU: whole images run a bf16 copy (weights and activations), not
    the fp32 network under autocast; the stylizer's own weights stay fp32."""
    if kind == "fast":
        stylizer, network = load_stylizer(tiny_fast_checkpoint(tmp_path / "f.ckpt")), "network"
    else:
        stylizer = load_stylizer(tiny_arbitrary_checkpoint(tmp_path / "a.ckpt"))
        stylizer.set_styles([pattern(48, 40, seed=5)])
        network = "transform"
    images = torch.cat([pattern(37, 53, seed=0), pattern(37, 53, seed=1)])
    expected = batch_stylizer(stylizer, torch.device("cpu"))(images)
    ran = []  # the input dtype of each network run (the copy keeps the hook)
    getattr(stylizer, network).register_forward_hook(
        lambda _, inputs, out: ran.append(inputs[0].dtype)
    )
    output = batch_stylizer(stylizer, torch.device("cpu"), "bf16")(images)
    assert ran == [torch.bfloat16]
    weights = {p.dtype for cast in stylizer.runners.values() for p in cast.parameters()}
    assert weights == {torch.bfloat16}
    assert next(getattr(stylizer, network).parameters()).dtype == torch.float32
    difference = (output - expected).abs()
    assert output.dtype == torch.float32 and 0 < difference.mean() < 0.02, difference.mean()


@pytest.mark.parametrize(
    "native, device, network, expected",
    [
        (True, "cpu", True, "bf16"),  # a trained network on a CPU with AMX or AVX-512 BF16
        (False, "cpu", True, "fp32"),  # bf16 would be emulated there, many times slower
        (True, "cpu", False, "fp32"),  # the optimisation methods keep fp32
        (True, "cuda", True, "fp32"),
    ],
)
def test_auto_precision_is_bf16_only_for_networks_on_a_native_bf16_cpu(
    monkeypatch, native, device, network, expected
):
    import nst.methods.common as common

    monkeypatch.setattr(common, "native_on_cpu", lambda precision: native)
    assert common.resolve_precision("auto", torch.device(device), network) == expected
    assert common.resolve_precision("fp16", torch.device(device), network) == "fp16"  # as given
    with pytest.raises(UserError, match="Unknown precision 'half'; use auto, fp32, bf16 or fp16"):
        common.resolve_precision("half", torch.device(device), network)


def test_stylize_defaults_to_auto_precision_which_onnxruntime_runs_in_fp32(tmp_path, monkeypatch):
    """The command's default is precision=auto: the bf16 copy where the CPU has native bf16,
    and fp32, not a refusal, for backend=onnxruntime."""
    import nst.methods.common as common

    monkeypatch.setattr(common, "native_on_cpu", lambda precision: True)
    assert compose_config().precision == "auto"
    images = pattern(32, 40, seed=0)
    checkpoint = tiny_fast_checkpoint(tmp_path / "fast.ckpt")
    stylizer = load_stylizer(checkpoint)
    batch_stylizer(stylizer, torch.device("cpu"), "auto")(images)
    assert {p.dtype for cast in stylizer.runners.values() for p in cast.parameters()} == {
        torch.bfloat16
    }
    on_onnx = load_stylizer(checkpoint, backend="onnxruntime")
    output = batch_stylizer(on_onnx, torch.device("cpu"), "auto")(images)
    expected = batch_stylizer(load_stylizer(checkpoint), torch.device("cpu"))(images)
    assert (output - expected).abs().max() < CLOSE


def test_arbitrary_strength_blends_embeddings_in_bf16(tmp_path):
    """strength < 1 mixes the photo's own embedding (bf16 under autocast) with the style's."""
    stylizer = load_stylizer(tiny_arbitrary_checkpoint(tmp_path / "a.ckpt"), strength=0.5)
    stylizer.set_styles([pattern(48, 40, seed=5)])
    images = pattern(37, 53, seed=0)
    expected = batch_stylizer(stylizer, torch.device("cpu"))(images)
    output = batch_stylizer(stylizer, torch.device("cpu"), "bf16")(images)
    assert output.dtype == torch.float32 and (output - expected).abs().mean() < 0.02
