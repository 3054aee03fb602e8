"""Style augmentation (Jackson et al. 2019): shapes, dtypes, seeds, strength, p, fitting."""

from types import SimpleNamespace

import pytest
import torch
from conftest import pattern, tiny_arbitrary_checkpoint
from torch.utils.data import DataLoader, TensorDataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from nst.augment import StyleAugment, fit_distribution, painting_embeddings
from nst.errors import UserError
from nst.image import save_image
from nst.predictors import resize_for_predictor

EMBEDDING = 8
SIZE = 32  # the predictor's input size: tiny, for speed


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_arbitrary_checkpoint(tmp_path_factory.mktemp("augment") / "tiny.ckpt", EMBEDDING)


@pytest.fixture(scope="module")
def paintings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paintings")
    for index in range(4):
        save_image(pattern(24, 20 + 4 * index, seed=10 + index), folder / f"p{index}.png")
    return folder


@pytest.fixture(scope="module")
def fitted(checkpoint, paintings):
    """StyleAugment with the normal fitted to the painting folder (built once: VGG start-up)."""
    return StyleAugment.from_checkpoint(checkpoint, paintings, predictor_size=SIZE)


@pytest.fixture
def make(fitted):
    """StyleAugment with the fitted networks and normal and other options (seed 0 by default)."""

    def make(**options) -> StyleAugment:
        options = {"seed": 0, "predictor_size": SIZE, **options}
        return StyleAugment(fitted.predictor, fitted.network, fitted.distribution, **options)

    return make


def photos(count: int = 3) -> torch.Tensor:
    return torch.cat([pattern(20, 24, seed=index) for index in range(count)])


def test_shape_dtype_device_and_range_are_kept(make):
    augment = make()
    batch = photos()
    for images in (batch, batch[0], (batch * 255).round().byte(), tv_tensors.Image(batch[1])):
        output = augment(images)
        assert output.shape == images.shape and output.dtype == images.dtype
        assert type(output) is type(images) and output.device == images.device
        assert output.min() >= 0 and output.max() <= (1 if images.is_floating_point() else 255)
        assert not torch.equal(output, images)
    uint8 = augment(tv_tensors.Image((batch * 255).byte()))
    assert isinstance(uint8, tv_tensors.Image) and uint8.dtype == torch.uint8


def test_same_seed_same_styles_other_seed_other_styles(make):
    batch = photos()
    first, again = make(seed=1), make(seed=1)
    output = first(batch)
    torch.testing.assert_close(output, again(batch))
    assert not torch.equal(output, make(seed=2)(batch))
    assert not torch.equal(output, first(batch))  # the generator moves on: new styles next call


def test_strength_zero_is_the_networks_reconstruction_and_differs_from_strength_one(make):
    batch = photos(2)
    augment = make(strength=0.0)
    with torch.no_grad():
        expected = augment.network(batch, augment.predictor(resize_for_predictor(batch, SIZE)))
    torch.testing.assert_close(augment(batch), expected)
    assert (make(strength=1.0)(batch) - expected).abs().mean() > 1e-3


def test_strength_range_draws_one_strength_per_image(make):
    augment = make(strength=(0.3, 0.7))
    strength = augment.make_params([photos(64)])["strength"]
    assert strength.shape == (64,) and strength.min() >= 0.3 and strength.max() <= 0.7
    assert strength.std() > 0.05
    with pytest.raises(UserError, match="strength must be in"):
        make(strength=(0.7, 0.3))
    with pytest.raises(UserError, match="p .* must be in"):
        make(p=1.5)


def test_p_zero_returns_the_input_and_p_half_augments_some(make):
    batch = photos(8)
    assert make(p=0.0)(batch) is batch
    output = make(p=0.5, seed=3)(batch)
    unchanged = [torch.equal(output[index], batch[index]) for index in range(len(batch))]
    assert 0 < sum(unchanged) < len(batch)


def test_composes_in_v2_compose_and_a_dataloader(make):
    augment = make()
    pipeline = v2.Compose([v2.RandomHorizontalFlip(p=1.0), augment, v2.CenterCrop(16)])
    image = photos(1)[0]
    assert pipeline(image).shape == (3, 16, 16)
    labels = torch.arange(4)
    image_out, label_out = pipeline(tv_tensors.Image(photos(1)[0]), labels[2])
    assert image_out.shape == (3, 16, 16) and label_out == 2  # the label passes through
    loader = DataLoader(
        TensorDataset(photos(4), labels),
        batch_size=2,
        num_workers=0,
        collate_fn=lambda items: v2.Compose([augment])(torch.stack([item[0] for item in items])),
    )
    batches = list(loader)
    assert [batch.shape for batch in batches] == [(2, 3, 20, 24)] * 2
    with pytest.raises(UserError, match="needs 3×H×W or N×3×H×W RGB"):
        make(p=0.0)(image[:1])
    with pytest.raises(UserError, match="v2.ToImage"):
        augment(v2.ToPILImage()(image))


def test_dataloader_workers_draw_different_styles_reproducibly(make, monkeypatch):
    """Each worker re-seeds from (seed, worker seed), as torch does for its global generator."""
    import nst.augment

    def in_worker(seed):
        monkeypatch.setattr(nst.augment, "get_worker_info", lambda: SimpleNamespace(seed=seed))
        return make(seed=7).make_params([photos(2)])["noise"]

    main = make(seed=7).make_params([photos(2)])["noise"]
    assert not torch.equal(in_worker(100), main) and not torch.equal(in_worker(100), in_worker(101))
    torch.testing.assert_close(in_worker(100), in_worker(100))


def test_fitting_recovers_a_known_gaussian():
    torch.manual_seed(0)
    mean = torch.tensor([1.0, -2.0, 0.5, 3.0])
    factor = torch.tensor([[1.0, 0, 0, 0], [0.5, 2.0, 0, 0], [-0.3, 0.2, 0.7, 0], [0, 1, 0, 1.5]])
    samples = mean + torch.randn(20000, 4) @ factor.T
    fitted = fit_distribution(samples)
    torch.testing.assert_close(fitted["mean"], mean, atol=0.05, rtol=0)
    covariance = fitted["cholesky"] @ fitted["cholesky"].T
    torch.testing.assert_close(covariance, factor @ factor.T, atol=0.1, rtol=0.03)
    assert fitted["paintings"] == 20000
    with pytest.raises(UserError, match="at least 2 paintings"):
        fit_distribution(samples[:1])


def test_paintings_as_folder_batch_list_or_saved_file_agree(checkpoint, fitted, tmp_path):
    saved = fitted.save_distribution(tmp_path / "paintings.pt")
    loaded = torch.load(saved, weights_only=True)["style_distribution"]
    for key in ("mean", "cholesky"):
        torch.testing.assert_close(loaded[key], fitted.distribution[key])
    from_file = StyleAugment.from_checkpoint(checkpoint, saved, seed=4, predictor_size=SIZE)
    torch.testing.assert_close(from_file.distribution, fitted.distribution)
    paintings = list(photos(5).split(1))
    from_list = fit_distribution(painting_embeddings(fitted.predictor, paintings, SIZE))
    from_batch = fit_distribution(painting_embeddings(fitted.predictor, torch.cat(paintings), SIZE))
    torch.testing.assert_close(from_list, from_batch)
    assert fitted.cholesky.shape == (EMBEDDING, EMBEDDING)
    assert torch.equal(fitted.cholesky, fitted.cholesky.tril())
    assert fitted.cholesky.diag().gt(0).all()


def test_missing_or_wrong_distribution_is_one_clear_sentence(checkpoint, fitted, tmp_path):
    with pytest.raises(UserError, match="holds no style distribution; pass paintings="):
        StyleAugment.from_checkpoint(checkpoint)
    with pytest.raises(UserError, match="Painting folder not found"):
        StyleAugment.from_checkpoint(checkpoint, tmp_path / "missing")
    wrong = {"mean": torch.zeros(3), "cholesky": torch.eye(3)}
    with pytest.raises(UserError, match="fit it again"):
        StyleAugment(fitted.predictor, fitted.network, wrong)
    with pytest.raises(UserError, match="holds no images"):
        StyleAugment.from_checkpoint(checkpoint, tmp_path)


def test_the_zoo_carries_the_distribution_and_style_augment_needs_no_arguments(
    checkpoint, fitted, tmp_path, monkeypatch
):
    """`python -m nst.zoo add arbitrary CKPT --paintings …` stores μ and L beside the networks;
    `StyleAugment()` then uses that model and that distribution."""
    from nst import zoo

    monkeypatch.setattr(zoo, "FOLDER", tmp_path)
    monkeypatch.setattr(zoo, "REGISTRY", tmp_path / "registry.json")
    zoo.add_model("arbitrary", checkpoint, distribution=fitted.distribution)
    stored = zoo.read_model("arbitrary")
    assert not any(key.startswith("style_distribution") for key in stored["state_dict"])
    for key, value in fitted.distribution.items():
        torch.testing.assert_close(stored["style_distribution"][key], value)  # fp32 kept
    augment = StyleAugment(seed=0, predictor_size=SIZE)
    torch.testing.assert_close(augment.cholesky, fitted.cholesky)
    output = augment(photos(2))
    assert output.shape == (2, 3, 20, 24) and not torch.allclose(output, photos(2), atol=0.05)
    with pytest.raises(UserError, match="both networks, or neither"):
        StyleAugment(predictor=fitted.predictor)
