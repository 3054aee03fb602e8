import logging

import pytest
import torch
from conftest import pattern

from nst.errors import UserError
from nst.vgg import LossNetwork, layer_names, random_state_dict

CAFFE_CONV_SHAPES = {
    "conv1_1": (64, 3, 3, 3),
    "conv1_2": (64, 64, 3, 3),
    "conv2_1": (128, 64, 3, 3),
    "conv2_2": (128, 128, 3, 3),
    "conv3_1": (256, 128, 3, 3),
    "conv3_4": (256, 256, 3, 3),
    "conv4_1": (512, 256, 3, 3),
    "conv4_4": (512, 512, 3, 3),
    "conv5_1": (512, 512, 3, 3),
    "conv5_4": (512, 512, 3, 3),
}


def test_layer_names_follow_the_standard_scheme():
    vgg16, vgg19 = layer_names("vgg16"), layer_names("vgg19")
    assert len(vgg16) == 13 * 2 + 5 and len(vgg19) == 16 * 2 + 5
    assert vgg19[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert vgg16[-4:] == ["relu5_2", "conv5_3", "relu5_3", "pool5"]
    assert "conv5_4" in vgg19 and "conv5_4" not in vgg16


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_activation_shapes_per_block(arch):
    network = LossNetwork(arch, "random")
    image = torch.rand(2, 3, 64, 48)
    last = "conv5_3" if arch == "vgg16" else "conv5_4"
    features = network(image, ["relu1_2", "pool1", "relu3_1", "conv4_2", last, "pool5"])
    assert features["relu1_2"].shape == (2, 64, 64, 48)
    assert features["pool1"].shape == (2, 64, 32, 24)
    assert features["relu3_1"].shape == (2, 256, 16, 12)
    assert features["conv4_2"].shape == (2, 512, 8, 6)
    assert features[last].shape == (2, 512, 4, 3)
    assert features["pool5"].shape == (2, 512, 2, 1)


def test_stops_at_the_deepest_requested_layer(random_vgg19):
    called = []
    hooks = [
        layer.register_forward_hook(lambda module, args, out, name=name: called.append(name))
        for name, layer in random_vgg19.layers.named_children()
    ]
    try:
        random_vgg19(torch.rand(1, 3, 32, 32), ["relu2_1", "conv1_1"])
    finally:
        for hook in hooks:
            hook.remove()
    assert called[-1] == "conv2_1"  # relu2_1 runs as a functional call after it
    assert "conv2_2" not in called and "pool2" not in called


def test_conv_output_is_not_overwritten_by_its_in_place_relu(random_vgg19):
    features = random_vgg19(torch.rand(1, 3, 32, 32), ["conv1_1", "relu1_1"])
    assert (features["conv1_1"] < 0).any()
    torch.testing.assert_close(features["relu1_1"], features["conv1_1"].clamp_min(0))


def test_frozen_and_kept_out_of_state_dict(random_vgg19):
    assert list(random_vgg19.parameters()) == []
    assert random_vgg19.state_dict() == {}
    random_vgg19.train()
    assert not random_vgg19.training
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    random_vgg19(image, ["relu2_1"])["relu2_1"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_unknown_layer_is_a_user_error(random_vgg19):
    with pytest.raises(UserError, match="conv6_1"):
        random_vgg19(torch.rand(1, 3, 32, 32), ["conv6_1"])


def test_average_pooling_changes_deeper_activations():
    image = torch.rand(1, 3, 32, 32)
    max_pool = LossNetwork("vgg19", "random", pooling="max")(image, ["relu2_1"])["relu2_1"]
    avg_pool = LossNetwork("vgg19", "random", pooling="avg")(image, ["relu2_1"])["relu2_1"]
    assert not torch.allclose(max_pool, avg_pool)
    with pytest.raises(UserError, match="pooling"):
        LossNetwork("vgg19", "random", pooling="median")


def test_caffe_weights_load_with_published_shapes_and_see_images():
    network = LossNetwork("vgg19", "caffe")
    assert network.source == "caffe"
    convs = dict(network.layers.named_children())
    for name, shape in CAFFE_CONV_SHAPES.items():
        assert tuple(convs[name].weight.shape) == shape
    first = network(pattern(64, 64, seed=1), ["relu3_1"])["relu3_1"]
    second = network(pattern(64, 64, seed=2), ["relu3_1"])["relu3_1"]
    assert first.abs().mean() > 0
    assert (first - second).abs().mean() > 0.1 * first.abs().mean()


def test_caffe_input_convention_is_bgr_mean_subtracted_0_255():
    network = LossNetwork("vgg19", "caffe")
    image = torch.rand(1, 3, 8, 8)
    expected_input = image.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    from nst.vgg import caffe_state_dict

    state = caffe_state_dict()
    expected = torch.nn.functional.conv2d(
        expected_input, state["conv1_1.weight"], state["conv1_1.bias"], padding=1
    )
    torch.testing.assert_close(
        network(image, ["conv1_1"])["conv1_1"], expected, atol=1e-3, rtol=1e-4
    )


def test_caffe_weights_need_vgg19():
    with pytest.raises(UserError, match="VGG19 only"):
        LossNetwork("vgg16", "caffe")


def test_auto_falls_back_to_caffe_in_one_line_when_offline(offline_hub, caplog):
    with caplog.at_level(logging.WARNING, logger="nst.vgg"):
        network = LossNetwork("vgg16", "auto")
    assert (network.source, network.arch) == ("caffe", "vgg19")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and "Caffe VGG19" in messages[0] and "\n" not in messages[0]


def test_strict_torchvision_without_cache_or_network_is_a_user_error(offline_hub):
    with pytest.raises(UserError, match="loss_net.weights=caffe"):
        LossNetwork("vgg19", "torchvision")


def test_torchvision_weights_come_from_the_hub_cache(offline_hub):
    torchvision_keys = {}
    names = layer_names("vgg16")
    for key, value in random_state_dict("vgg16", seed=3).items():
        layer, kind = key.split(".")
        torchvision_keys[f"features.{names.index(layer)}.{kind}"] = value
    checkpoints = offline_hub / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(torchvision_keys, checkpoints / "vgg16-397923af.pth")
    network = LossNetwork("vgg16", "auto")
    assert (network.source, network.arch) == ("torchvision", "vgg16")
    conv = dict(network.layers.named_children())["conv3_2"]
    torch.testing.assert_close(conv.weight, random_state_dict("vgg16", seed=3)["conv3_2.weight"])
    torch.testing.assert_close(network.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_local_state_dict_file(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(random_state_dict("vgg19", seed=5), path)
    network = LossNetwork("vgg19", str(path))
    conv = dict(network.layers.named_children())["conv5_4"]
    torch.testing.assert_close(conv.weight, random_state_dict("vgg19", seed=5)["conv5_4.weight"])
    with pytest.raises(UserError, match="no vgg19 weights"):
        torch.save({"conv1_1.weight": torch.zeros(64, 3, 3, 3)}, path)
        LossNetwork("vgg19", str(path))
    with pytest.raises(UserError, match="neither a weight source"):
        LossNetwork("vgg19", str(tmp_path / "missing.pth"))
