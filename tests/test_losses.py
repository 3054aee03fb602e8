import pytest
import torch

from nst.errors import UserError
from nst.losses import (
    PerceptualLoss,
    bilinear,
    binomial_blur,
    block_sums,
    content_loss,
    cross_layer_correlation,
    gram_matrix,
    layer_weights,
    style_loss,
    total_variation,
    upsample_nearest,
)


def test_gram_matrix_is_symmetric_and_normalised_by_positions():
    features = torch.randn(2, 5, 6, 7)
    gram = gram_matrix(features)
    assert gram.shape == (2, 5, 5)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    flat = features.reshape(2, 5, 42)
    torch.testing.assert_close(gram[1, 2, 3], (flat[1, 2] * flat[1, 3]).sum() / 42)
    # Normalised by H·W: tiling the map leaves the Gram matrix unchanged.
    torch.testing.assert_close(gram_matrix(features.repeat(1, 1, 2, 3)), gram)


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_gram_matrix_gradient_is_the_analytic_one(shift):
    features = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: gram_matrix(x, shift), (features,))
    # Second order too (a loss of a gradient, e.g. a gradient penalty, must still work).
    assert torch.autograd.gradgradcheck(lambda x: gram_matrix(x, shift), (features,))


def test_gram_matrix_under_bf16_autocast_returns_gradients_in_the_features_dtype():
    features = torch.randn(1, 4, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features)
    assert gram.dtype == torch.bfloat16
    gram.float().square().sum().backward()
    assert features.grad.dtype == torch.float32
    exact = torch.autograd.grad(gram_matrix(features).square().sum(), features)[0]
    torch.testing.assert_close(features.grad, exact, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("shift", [-1.0, 0.5])
def test_gram_shift_adds_the_algebraic_terms(shift):
    features = torch.rand(2, 4, 5, 5)
    positions = 25
    flat = features.reshape(2, 4, positions)
    sums = flat.sum(2)
    plain = gram_matrix(features)
    expected = plain + shift * (sums[:, :, None] + sums[:, None, :]) / positions + shift**2
    torch.testing.assert_close(gram_matrix(features, shift=shift), expected)
    # …and equals the definition (Novak & Nikulin §3.3), G = (F + s)(F + s)ᵀ / M.
    shifted = flat + shift
    torch.testing.assert_close(
        gram_matrix(features, shift=shift), shifted @ shifted.transpose(1, 2) / positions
    )


def test_nearest_upsampling_lines_up_with_the_pooling():
    deep = torch.rand(1, 2, 3, 4)
    even = upsample_nearest(deep, (6, 8))
    torch.testing.assert_close(even, torch.nn.functional.interpolate(deep, size=(6, 8)))
    odd = upsample_nearest(deep, (7, 9))  # pooling 7×9 gives 3×4, dropping the last row, column
    torch.testing.assert_close(odd[..., :6, :8], even)
    torch.testing.assert_close(odd[..., 6, :8], even[..., 5, :])
    torch.testing.assert_close(odd[..., :, 8], odd[..., :, 7])
    two_poolings = upsample_nearest(deep, (13, 18))  # 13 → 6 → 3, 18 → 9 → 4
    assert two_poolings.shape[-2:] == (13, 18)
    torch.testing.assert_close(two_poolings[..., 4:8, 4:8], deep[..., 1:2, 1:2].expand(1, 2, 4, 4))


@pytest.mark.parametrize("shallow_size", [(8, 12), (9, 13), (13, 18)])
def test_block_sums_are_the_adjoint_of_nearest_upsampling(shallow_size):
    shallow, deep = torch.rand(2, 3, *shallow_size), torch.rand(2, 5, 3, 4)
    if shallow_size == (8, 12):
        deep = torch.rand(2, 5, 4, 6)
    up = upsample_nearest(deep, shallow_size)
    sums = block_sums(shallow, deep.shape[-2:])
    assert sums.shape[-2:] == deep.shape[-2:]
    torch.testing.assert_close(
        sums.flatten(2) @ deep.flatten(2).transpose(1, 2),
        shallow.flatten(2) @ up.flatten(2).transpose(1, 2),
    )


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
@pytest.mark.parametrize("blur_steps", [0, 1])
def test_cross_layer_correlation_matches_its_definition(upsample, blur_steps):
    # G = F^l [blur^n(up(F^k))]ᵀ / M_l (§3.4, §3.6), whichever route computes it.
    shallow, deep = torch.rand(2, 3, 9, 13), torch.rand(2, 5, 4, 6)
    up = upsample_nearest(deep, (9, 13)) if upsample == "nearest" else bilinear(deep, (9, 13))
    for _ in range(blur_steps):
        up = binomial_blur(up)
    expected = shallow.flatten(2) @ up.flatten(2).transpose(1, 2) / (9 * 13)
    result = cross_layer_correlation(shallow, deep, upsample, blur_steps)
    assert result.shape == (2, 3, 5)
    torch.testing.assert_close(result, expected)
    same_size = torch.rand(2, 5, 9, 13)
    expected = shallow.flatten(2) @ same_size.flatten(2).transpose(1, 2) / (9 * 13)
    torch.testing.assert_close(cross_layer_correlation(shallow, same_size), expected)


LAYOUTS = [torch.contiguous_format, torch.channels_last]


def feature_map(*shape: int, layout=torch.contiguous_format) -> torch.Tensor:
    """A float64 map in `layout` that requires a gradient (VGG's maps are channels_last)."""
    values = torch.randn(*shape, dtype=torch.float64).contiguous(memory_format=layout)
    return values.requires_grad_()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("deep_size", [(4, 6), (9, 13)])
def test_cross_layer_correlation_gradients_are_exact_in_either_layout(layout, deep_size):
    # The block-sum route (deeper map pooled once) and the same-size route (one product).
    shallow, deep = feature_map(2, 3, 9, 13, layout=layout), feature_map(2, 4, *deep_size)
    assert torch.autograd.gradcheck(cross_layer_correlation, (shallow, deep))
    assert torch.autograd.gradgradcheck(cross_layer_correlation, (shallow, deep))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shallow_size", [(9, 13), (13, 18)])
def test_nearest_upsampling_and_block_sums_have_exact_gradients(layout, shallow_size):
    # Each is the other's backward; odd sizes exercise the replicated last rows and columns.
    deep = feature_map(2, 3, 3, 4, layout=layout)
    shallow = feature_map(2, 3, *shallow_size, layout=layout)
    for function, tensor, size in [
        (upsample_nearest, deep, shallow_size),
        (block_sums, shallow, (3, 4)),
    ]:
        assert torch.autograd.gradcheck(lambda x, f=function, s=size: f(x, s), (tensor,))
        assert torch.autograd.gradgradcheck(lambda x, f=function, s=size: f(x, s), (tensor,))
    assert upsample_nearest(deep, shallow_size).is_contiguous(memory_format=layout)
    # The upsampling route of the chain (nearest, then the blur of §3.6).
    assert torch.autograd.gradcheck(
        lambda x, y: cross_layer_correlation(x, y, "nearest", 1), (shallow, deep)
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("term", ["correlation", "gram", "content"])
def test_loss_gradients_keep_the_feature_layout(layout, term):
    # A gradient in another layout than its map costs a copy before the VGG backward.
    shallow, deep = feature_map(1, 8, 9, 13, layout=layout), feature_map(1, 8, 4, 6, layout=layout)
    if term == "correlation":
        loss = cross_layer_correlation(shallow, deep).sum()
    elif term == "gram":
        loss = gram_matrix(shallow).sum() + gram_matrix(deep).sum()
    else:
        loss = content_loss(shallow, torch.rand_like(shallow)) + content_loss(
            deep, deep.detach() / 2
        )
    gradients = torch.autograd.grad(loss, (shallow, deep))
    assert all(gradient.is_contiguous(memory_format=layout) for gradient in gradients)


def test_content_loss_gradient_is_exact_for_features_and_a_broadcast_target():
    features, target = feature_map(2, 3, 5, 4), feature_map(1, 3, 5, 4)
    assert torch.autograd.gradcheck(content_loss, (features, target))
    assert torch.autograd.gradgradcheck(content_loss, (features, target))


def test_binomial_blur_keeps_constants_and_smooths():
    constant = torch.full((1, 2, 6, 7), -0.7)
    torch.testing.assert_close(binomial_blur(constant), constant)
    noise = torch.rand(1, 2, 16, 16)
    assert binomial_blur(noise).shape == noise.shape
    assert binomial_blur(noise).var() < 0.5 * noise.var()


def test_identical_inputs_give_zero_content_and_style_loss():
    features = torch.rand(1, 8, 10, 10)
    assert content_loss(features, features.clone()) == 0
    assert style_loss(gram_matrix(features), gram_matrix(features.clone())) == 0
    assert content_loss(features, torch.zeros_like(features)) > 0


def test_losses_are_relative_so_feature_scale_does_not_matter():
    features, target = torch.rand(1, 8, 10, 10), torch.rand(1, 8, 10, 10)
    torch.testing.assert_close(
        content_loss(55 * features, 55 * target), content_loss(features, target)
    )
    torch.testing.assert_close(
        style_loss(gram_matrix(55 * features), gram_matrix(55 * target)),
        style_loss(gram_matrix(features), gram_matrix(target)),
    )


def test_total_variation():
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert total_variation(flat) == 0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0
    torch.testing.assert_close(total_variation(stripes), torch.tensor(1.0))


def test_layer_weights():
    assert layer_weights(["a", "b"], None) == {"a": 0.5, "b": 0.5}
    assert layer_weights(["a", "b"], [2, 3]) == {"a": 2.0, "b": 3.0}
    with pytest.raises(UserError, match="2 layers but 1"):
        layer_weights(["a", "b"], [1])
    with pytest.raises(UserError):
        layer_weights([], None)


def make_loss(network, **weights):
    return PerceptualLoss(
        network,
        content_layers={"relu3_1": 1.0},
        style_layers={"relu1_1": 0.5, "relu2_1": 0.5},
        **weights,
    )


def test_perceptual_loss_returns_named_terms_that_sum_to_total(random_vgg19):
    loss = make_loss(random_vgg19, content_weight=2.0, style_weight=3.0, tv_weight=0.5)
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 24, 24)
    loss.set_content(content)
    loss.set_style([style])
    terms = loss(torch.rand(1, 3, 32, 32))
    assert set(terms) == {"content", "style", "tv", "total"}
    torch.testing.assert_close(terms["total"], terms["content"] + terms["style"] + terms["tv"])
    assert all(terms[name] > 0 for name in terms)
    zero = loss(content)
    assert zero["content"] == 0


def test_style_targets_are_encoded_once_and_stay_out_of_the_state_dict(random_vgg19):
    loss = make_loss(random_vgg19)
    style = torch.rand(1, 3, 24, 24)
    loss.set_style([style])
    loss.set_content(style)
    assert loss.state_dict() == {}
    stored = dict(loss.named_buffers())
    torch.testing.assert_close(stored["style_relu2_1"], loss.encode_style(style)["relu2_1"])
    assert loss(style)["style"] == 0 and loss(style)["content"] == 0


def test_blended_styles_match_the_weighted_mean_of_gram_targets(random_vgg19):
    loss = make_loss(random_vgg19)
    first, second = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 40, 40)
    loss.set_style([first, second], [1.0, 3.0])
    expected = (
        0.25 * loss.encode_style(first)["relu1_1"] + 0.75 * loss.encode_style(second)["relu1_1"]
    )
    torch.testing.assert_close(loss.style_relu1_1, expected)


def test_content_batch_replaces_stored_targets(random_vgg19):
    loss = make_loss(random_vgg19)
    loss.set_style([torch.rand(1, 3, 24, 24)])
    batch = torch.rand(3, 3, 32, 32)
    assert loss(batch, content=batch)["content"] == 0
    assert loss(batch, content=batch.flip(0))["content"] > 0
