import pytest
import torch

from nst.errors import UserError
from nst.networks import ResidualBlock, TransformNet


@pytest.fixture(scope="module")
def network() -> TransformNet:
    torch.manual_seed(0)
    return TransformNet().eval()


@pytest.mark.parametrize("height, width", [(33, 47), (64, 31), (9, 10), (5, 5), (64, 64)])
def test_output_has_the_input_size_and_stays_in_unit_range(network, height, width):
    image = torch.rand(2, 3, height, width)
    with torch.no_grad():
        output = network(image)
    assert output.shape == image.shape
    assert output.min() >= 0 and output.max() <= 1


def test_layout_follows_johnson_table_1(network):
    convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (3, 32, 9, 1),
        (32, 64, 3, 2),
        (64, 128, 3, 2),
        *[(128, 128, 3, 1)] * 10,
        (128, 64, 3, 1),
        (64, 32, 3, 1),
        (32, 3, 9, 1),
    ]
    assert sum(isinstance(m, ResidualBlock) for m in network.modules()) == 5
    assert sum(p.numel() for p in network.parameters()) == 1_679_235


def test_instance_norm_is_per_image_and_channel():
    """Ulyanov et al.: each image is normalised on its own, so batch neighbours do not matter."""
    torch.manual_seed(1)
    network = TransformNet(channels=8, residual_blocks=1).eval()
    first, second = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24) * 0.2
    with torch.no_grad():
        together = network(torch.cat([first, second]))
        torch.testing.assert_close(together[:1], network(first), atol=1e-5, rtol=0)
    norm = network.layers[0][2]
    features = torch.randn(2, 8, 6, 5) * 3 + 1
    torch.testing.assert_close(norm(features), torch.nn.functional.instance_norm(features))


def test_padding_crops_back_exactly():
    """A size that is not a multiple of 4 gives the top-left of the padded image's output."""
    torch.manual_seed(2)
    network = TransformNet(channels=8, residual_blocks=1).eval()
    image = torch.rand(1, 3, 30, 42)
    padded = torch.nn.functional.pad(image, (0, 2, 0, 2), mode="reflect")
    with torch.no_grad():
        torch.testing.assert_close(network(image), network(padded)[..., :30, :42])


@pytest.mark.parametrize("norm, upsample", [("batch", "transpose"), ("instance", "transpose")])
def test_the_papers_choices_are_available(norm, upsample):
    network = TransformNet(channels=8, residual_blocks=2, norm=norm, upsample=upsample)
    assert network(torch.rand(2, 3, 21, 18)).shape == (2, 3, 21, 18)


@pytest.mark.parametrize("option", [{"norm": "layer"}, {"upsample": "bilinear"}])
def test_unknown_options_are_user_errors(option):
    with pytest.raises(UserError, match="Unknown network"):
        TransformNet(**option)
