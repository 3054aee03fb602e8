"""The arbitrary method: CIN, the style predictor, interpolation, data, checkpoints."""

import pytest
import pytorch_lightning as pl
import torch
from conftest import load_script, pattern, tiny_fast_checkpoint
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from pytorch_lightning.callbacks import ModelCheckpoint

from nst.api import compose_config
from nst.data import ContentDataModule
from nst.errors import UserError, user_error_cause
from nst.evaluate import StyleEvaluator
from nst.image import load_image, save_image
from nst.inference import ArbitraryStylizer, load_stylizer, read_checkpoint, style_embedding
from nst.methods.arbitrary import ArbitraryStyle, resolved_loss_net
from nst.networks import (
    ConditionalInstanceNorm,
    ConditionalTransformNet,
    TransformNet,
    conditional_from_transform_net,
    normalization,
)
from nst.predictors import InceptionPredictor, VGGPredictor
from nst.style_data import PairedDataModule, StyleSet, holdout_indices
from nst.training import warm_start
from nst.vgg import LossNetwork

train_script = load_script("train")
SMALL = ["method.network.channels=8", "method.predictor.hidden=16"]


def arbitrary_config(*overrides):
    arguments = [
        "method=arbitrary",
        "data=synthetic",
        "loss_net.weights=random",
        *SMALL,
        *overrides,
    ]
    return compose_config("train", train_script.style_overrides(arguments))


def build_module(*overrides) -> ArbitraryStyle:
    """ArbitraryStyle as train.py builds it; a UserError comes out unwrapped."""
    try:
        return instantiate(arbitrary_config(*overrides).method, _convert_="all")
    except InstantiationException as error:
        raise user_error_cause(error) or error from None


def synthetic_data(batch_size: int, *overrides: str, **style) -> ContentDataModule:
    """data=synthetic as method=arbitrary sees it, with `style` options changed."""
    cfg = arbitrary_config(f"data.batch_size={batch_size}", *overrides).data
    settings = {key: value for key, value in cfg.items() if key not in ("_target_", "style")}
    return PairedDataModule(**{**settings, "seed": 0}, style={**cfg.style, **style})


def test_config_has_the_papers_layers_and_pairs_the_data():
    cfg = compose_config("train", ["method=arbitrary", "data=painter_by_numbers"])
    assert list(cfg.method.content_layers) == ["relu3_3"] and cfg.method.pooling == "avg"
    assert list(cfg.method.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert cfg.method.trains_on_styles is True and cfg.data.batch_size == 8
    assert list(cfg.data.style.random_size) == [128, 300]
    paired = train_script.build_data(
        compose_config("train", ["method=arbitrary", "data=synthetic"])
    )
    assert isinstance(paired, PairedDataModule)
    fast = train_script.build_data(compose_config("train", ["method=fast", "data=synthetic"]))
    assert type(fast) is ContentDataModule  # the same data settings, unpaired


def test_conditional_instance_norm_with_a_one_hot_style_is_that_styles_instance_norm():
    """Dumoulin et al.: γ, β ∈ R^{N×C}; a one-hot style vector picks row s, giving plain IN."""
    torch.manual_seed(0)
    styles, channels = 4, 6
    gammas, betas = torch.randn(styles, channels), torch.randn(styles, channels)
    x = torch.randn(3, channels, 7, 9) * 5 + 2
    one_hot = torch.nn.functional.one_hot(torch.tensor([2, 0, 2]), styles).float()
    conditional = ConditionalInstanceNorm(channels)(x, one_hot @ gammas, one_hot @ betas)
    for index, style in enumerate([2, 0, 2]):
        plain = normalization("instance", channels)
        with torch.no_grad():
            plain.weight.copy_(gammas[style])
            plain.bias.copy_(betas[style])
        torch.testing.assert_close(conditional[index : index + 1], plain(x[index : index + 1]))
        reference = torch.nn.functional.instance_norm(x[index : index + 1], eps=1e-5)
        expected = reference * gammas[style, :, None, None] + betas[style, :, None, None]
        torch.testing.assert_close(conditional[index : index + 1], expected, atol=1e-4, rtol=1e-4)


def test_transfer_network_has_the_papers_2758_norm_parameters_and_keeps_sizes():
    network = ConditionalTransformNet()
    assert network.norm_params == 2758
    output = network(torch.rand(2, 3, 29, 35), torch.randn(2, 100))
    assert output.shape == (2, 3, 29, 35) and output.min() >= 0 and output.max() <= 1
    # Starting point: every embedding gives plain instance norm (γ = 1, β = 0) up to small slopes.
    params = network.style_params(torch.zeros(1, 100))
    assert params[0, :128].eq(1).all() and params[0, 128:256].eq(0).all()
    with pytest.raises(UserError, match="Unknown encoder norm"):
        ConditionalTransformNet(encoder_norm="layer")


def test_predictors_map_any_style_image_to_the_embedding():
    vgg = LossNetwork("vgg16", "random")
    layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    for hidden in (0, 32):
        predictor = VGGPredictor(vgg, layers, embedding_size=100, hidden=hidden)
        assert predictor(torch.rand(3, 3, 40, 56)).shape == (3, 100)
        assert predictor(torch.rand(1, 3, 64, 33)).shape == (1, 100)
        assert all(not key.startswith("loss_network") for key in predictor.state_dict())
    inception = InceptionPredictor(embedding_size=100, pretrained=False)
    assert inception(torch.rand(2, 3, 96, 128)).shape == (2, 100)


def test_inception_backbone_offline_is_one_clear_sentence(offline_hub, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(UserError, match="Inception-v3 weights are not cached"):
        build_module("method.predictor.backbone=inception_v3")


class RecordingTransform(torch.nn.Module):
    """Stands in for T: records the embedding it is given, returns the input."""

    def forward(self, image, embedding):
        self.embedding = embedding
        return image


def test_strength_interpolates_between_the_photos_and_the_styles_embedding():
    torch.manual_seed(0)
    predictor = VGGPredictor(LossNetwork("vgg16", "random"), ["relu1_2", "relu2_2"], 100, 16)
    photo, style = pattern(32, 48, seed=1), pattern(40, 40, seed=2)
    style_code = style_embedding(predictor, [style], size=None)
    with torch.no_grad():
        photo_code = predictor(photo)
    for strength in (0.0, 0.3, 1.0):
        transform = RecordingTransform()
        ArbitraryStylizer(predictor, transform, strength=strength).set_styles([style], size=None)(
            photo
        )
        expected = strength * style_code + (1 - strength) * photo_code
        torch.testing.assert_close(transform.embedding, expected)
    network = ConditionalTransformNet(channels=8).eval()
    with torch.no_grad():
        own = ArbitraryStylizer(predictor, network, strength=0.0).set_styles([style], size=None)(
            photo
        )
        full = ArbitraryStylizer(predictor, network).set_styles([style], size=None)(photo)
        torch.testing.assert_close(own, network(photo, photo_code))
        torch.testing.assert_close(full, network(photo, style_code))
    with pytest.raises(UserError, match="strength must be between 0 and 1"):
        ArbitraryStylizer(predictor, network, strength=1.5)


def test_several_styles_mix_their_embeddings_by_weight():
    predictor = VGGPredictor(LossNetwork("vgg16", "random"), ["relu1_2"], 100, 0)
    first, second = pattern(32, 32, seed=3), pattern(32, 32, seed=4)
    mixed = style_embedding(predictor, [first, second], [0.3, 0.7], size=None)
    with torch.no_grad():
        expected = 0.3 * predictor(first) + 0.7 * predictor(second)
    torch.testing.assert_close(mixed, expected)
    with pytest.raises(UserError, match="2 style images but 1 style_weights"):
        style_embedding(predictor, [first, second], [1.0])


def test_a_few_steps_lower_the_loss_on_synthetic_pairs():
    torch.manual_seed(0)
    module = build_module()
    data = synthetic_data(batch_size=4, random_size=None)
    data.setup("fit")
    content, style = next(iter(data.train_dataloader()))
    assert content.shape == (4, 3, 32, 32) and style.shape[:2] == (4, 3)
    optimizer = module.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(8):
        embedding, targets = module.encode_styles(style)
        loss = module.loss(module(content, embedding), content=content, style=targets)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.predictor.parameters())


def test_paired_data_holds_styles_out_and_draws_random_style_sizes(tmp_path):
    folder = tmp_path / "paintings"
    folder.mkdir()
    for index in range(6):
        save_image(pattern(40, 50, seed=index), folder / f"painting_{index}.png")
    data = PairedDataModule(
        synthetic=8,
        size=32,
        crop=32,
        batch_size=4,
        workers=0,
        val_images=2,
        style={
            "path": str(folder),
            "size": 32,
            "crop": 24,
            "random_size": [16, 20],
            "holdout": ["painting_4.png", "painting_1"],
            "grid_styles": 2,
        },
    )
    data.setup("fit")
    assert sorted(data.train_set.styles.dataset["name"]) == [
        "painting_0.png",
        "painting_2.png",
        "painting_3.png",
        "painting_5.png",
    ]
    content, style = next(iter(data.train_dataloader()))
    assert content.shape == (4, 3, 32, 32) and 16 <= style.shape[-1] <= 20
    assert style.shape[-1] == style.shape[-2] and style.min() >= 0 and style.max() <= 1
    ((photos, grid, seen),) = data.val_dataloader()
    assert photos.shape == (2, 3, 32, 32) and grid.shape == (4, 3, 24, 24) and seen == 2
    names = [f"painting_{index}.jpg" for index in range(10)]
    picks = {tuple(holdout_indices(names, 3, seed=seed)) for seed in range(5)}
    assert all(len(set(pick)) == 3 and list(pick) == sorted(pick) for pick in picks)
    assert all(0 <= index < 10 for pick in picks for index in pick) and len(picks) > 1
    assert holdout_indices(names, ["painting_7", "painting_2.jpg"], seed=0) == [2, 7]
    with pytest.raises(UserError, match="not in the style set"):
        holdout_indices(["a.jpg"], ["z.jpg"], seed=0)
    with pytest.raises(UserError, match="trains on style images"):
        PairedDataModule(synthetic=4)


def test_checkpoint_holds_the_networks_and_rebuilds_the_vgg_it_names(tmp_path):
    torch.manual_seed(0)
    module = build_module()
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, save_top_k=0, save_last=True, save_weights_only=True
    )
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        callbacks=[checkpoint],
        val_check_interval=2,
        check_val_every_n_epoch=None,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=synthetic_data(batch_size=2))
    assert (tmp_path / "images" / "step000002.png").is_file()
    assert (tmp_path / "styles_holdout.txt").read_text().count("\n") == 2

    raw = read_checkpoint(tmp_path / "last.ckpt")
    assert {key.split(".")[0] for key in raw["state_dict"]} == {"transform", "predictor"}
    assert not any("loss_network" in key for key in raw["state_dict"])
    assert raw["hyper_parameters"]["loss_net"] == {"arch": "vgg16", "weights": "random"}
    stylizer = load_stylizer(tmp_path / "last.ckpt")
    predictor, transform = stylizer.predictor, stylizer.transform
    assert stylizer.hparams["name"] == "arbitrary"
    module.eval()
    photo, style = torch.rand(1, 3, 29, 35), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(predictor(style), module.predictor(style))
        code = predictor(style[:1])
        torch.testing.assert_close(transform(photo, code), module.transform(photo, code))
    parameters = sum(p.numel() for p in [*transform.parameters(), *predictor.parameters()])
    assert (tmp_path / "last.ckpt").stat().st_size < 4 * parameters * 1.1 + 100_000


def test_auto_weights_are_stored_as_the_source_they_resolved_to(offline_hub):
    network = LossNetwork("vgg16", "auto")
    assert resolved_loss_net(network, {"arch": "vgg16", "weights": "auto"}) == {
        "arch": "vgg19",
        "weights": "caffe",
    }


def test_wrong_checkpoint_kinds_and_settings_are_user_errors(tmp_path):
    torch.save({"hyper_parameters": {"name": "fast"}, "state_dict": {}}, tmp_path / "fast.ckpt")
    with pytest.raises(UserError, match="not an arbitrary-method checkpoint .*method=fast"):
        load_stylizer(tmp_path / "fast.ckpt", kind="arbitrary")
    torch.save({"hyper_parameters": {"name": "arbitrary"}}, tmp_path / "bare.ckpt")
    with pytest.raises(UserError, match="lacks the settings"):
        load_stylizer(tmp_path / "bare.ckpt")
    with pytest.raises(UserError, match="Unknown predictor backbone"):
        build_module("method.predictor.backbone=resnet")
    with pytest.raises(UserError, match="lr must be positive"):
        build_module("method.lr=0")


def test_the_stability_term_joins_the_loss_only_when_switched_on():
    module = build_module("method.network.channels=8", "method.network.residual_blocks=1")
    logged = {}
    module.log_dict = lambda values, **kwargs: logged.update(values)
    module.log = lambda *args, **kwargs: None
    batch = (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    module.training_step(batch, 0)
    assert "train/stability" not in logged  # off by default: the paper's loss
    module.hparams.stability_weight = 10.0
    total = module.training_step(batch, 0)
    assert logged["train/stability"] > 0
    rest = logged["train/content"] + logged["train/style"] + logged["train/tv"]
    assert torch.allclose(total, rest + logged["train/stability"])
    with pytest.raises(UserError, match="stability_zoom must be zero or positive"):
        build_module("method.stability_zoom=-1")


def test_style_folders_combine_and_a_fixed_half_of_one_is_held_out(tmp_path):
    """data=bsds_paintings: textures and paintings in one set; FOLDER/even holds out positions
    0, 2, 4, … of that folder in name order, the rest of it and the other folder train."""
    for folder, count in (("textures", 3), ("paintings", 5)):
        (tmp_path / folder).mkdir()
        for index in range(count):
            save_image(pattern(24, 24, seed=index), tmp_path / folder / f"{folder}_{index}.png")
    style_set = StyleSet(
        path=[str(tmp_path / "textures"), str(tmp_path / "paintings")], holdout="paintings/even"
    )
    training, held = style_set.load(workers=0)
    assert held["name"] == [f"paintings/paintings_{index}.png" for index in (0, 2, 4)]
    assert sorted(training["name"]) == [
        "paintings/paintings_1.png",
        "paintings/paintings_3.png",
        *(f"textures/textures_{index}.png" for index in range(3)),
    ]
    names = ["a/x.jpg", "b/y.jpg", "a/z.jpg", "a/w.jpg"]
    assert holdout_indices(names, "a/odd", seed=0) == [0]  # a/w, a/x, a/z: position 1 is a/x
    for rule, message in (("a/third", "FOLDER/even"), ("c/even", "no style is in a folder")):
        with pytest.raises(UserError, match=message):
            holdout_indices(names, rule, seed=0)
    with pytest.raises(UserError, match="is not a folder"):
        StyleSet(path=[str(tmp_path / "textures"), str(tmp_path / "nowhere")]).load(workers=0)


def test_the_zoo_data_config_trains_on_the_odd_half_of_pacs():
    cfg = compose_config(
        "train", train_script.style_overrides(["method=arbitrary", "data=bsds_paintings"])
    )
    assert cfg.data.style.holdout == "paintings_pacs_art/even" and cfg.method.trains_on_styles
    assert [path.split("/")[-1] for path in cfg.data.style.path] == [
        "textures_dtd10",
        "paintings_pacs_art",
    ]


def test_a_fast_model_warm_starts_the_conditional_network_exactly():
    """conditional_from_transform_net: with zero style slopes, every layer before the last CIN
    computes what the fast network computes, whatever the embedding."""
    torch.manual_seed(0)
    fast = TransformNet(channels=8, residual_blocks=2)
    with torch.no_grad():
        for name, value in fast.named_parameters():
            if name.endswith(".weight") and value.dim() == 1:  # non-trivial norm γ, β
                value.normal_(1.0, 0.3)
            elif value.dim() == 1:
                value.normal_(0.0, 0.3)
    conditional = ConditionalTransformNet(channels=8, residual_blocks=2, encoder_norm="instance")
    conditional_from_transform_net(conditional, fast.state_dict())
    with torch.no_grad():
        conditional.style_params.weight.zero_()
    seen = {}
    fast.layers[-1].register_forward_hook(lambda m, i, o: seen.setdefault("fast", o))
    conditional.decoder[2].conv.register_forward_hook(lambda m, i, o: seen.setdefault("cin", o))
    image = torch.rand(1, 3, 32, 40)
    fast(image), conditional(image, torch.randn(1, 100))
    torch.testing.assert_close(seen["cin"], seen["fast"], atol=1e-5, rtol=1e-4)


def test_init_from_a_fast_checkpoint_starts_an_arbitrary_run(tmp_path):
    fast_path = tiny_fast_checkpoint(tmp_path / "fast.ckpt")
    module = build_module(
        "method.network.channels=4",
        "method.network.residual_blocks=1",
        "method.network.encoder_norm=instance",
    )
    assert "Starting the transfer network from the fast model" in warm_start(module, fast_path)
    fast_state = torch.load(fast_path, weights_only=True)["state_dict"]
    torch.testing.assert_close(
        module.transform.encoder[0][1].weight, fast_state["transform.layers.0.1.weight"]
    )
    wider = build_module("method.network.channels=8", "method.network.residual_blocks=1")
    with pytest.raises(UserError, match="same channels and residual_blocks"):
        warm_start(wider, fast_path)


def test_the_predictor_can_learn_at_its_own_rate_under_the_schedule():
    module = build_module(
        "method.predictor_lr=1e-4", "method.lr_schedule=constant", "method.warmup_steps=4"
    )
    settings = module.configure_optimizers()
    transform, predictor = settings["optimizer"].param_groups
    assert transform["lr"] == pytest.approx(1e-3 / 4) and predictor["lr"] == pytest.approx(1e-4 / 4)
    assert len(predictor["params"]) == len(list(module.predictor.parameters()))
    assert build_module().configure_optimizers()["optimizer"].param_groups[1]["lr"] == 1e-3


def test_running_standardize_learns_the_statistics_and_ignores_batch_partners():
    from nst.predictors import RunningStandardize

    torch.manual_seed(0)
    data = torch.randn(40, 6) * torch.tensor([1.0, 2, 3, 4, 5, 6]) + 10
    standardize = RunningStandardize(6)
    for batch in data.split(4):
        standardize(batch)
    assert torch.allclose(standardize.mean, data.mean(0), atol=1e-4)
    assert torch.allclose(standardize.var, data.var(0, unbiased=False), rtol=1e-4)
    standardize.eval()
    alone = standardize(data[:1])
    assert torch.equal(alone, standardize(data[:3])[:1])  # the same row, whatever its batch
    assert standardize.count.item() == 40  # evaluation does not update


def test_the_predictor_keeps_styles_apart_from_the_first_step():
    """Standardised statistics: two different styles get clearly different embeddings even
    before training, where raw statistics (all positive, a large common part) barely differ."""
    from nst.predictors import VGGPredictor

    vgg = LossNetwork("vgg16", "random")
    styles = torch.stack([pattern(32, 32, seed) for seed in range(8)]).squeeze(1)
    spreads = {}
    for standardize in (False, True):
        torch.manual_seed(0)
        predictor = VGGPredictor(vgg, ["relu1_2", "relu2_2"], 16, 0, standardize=standardize)
        predictor.train()
        predictor(styles)  # one training batch: the running statistics
        predictor.eval()
        embeddings = predictor(styles)
        spreads[standardize] = (embeddings.std(0) / embeddings.abs().mean(0)).mean().item()
    assert spreads[True] > 1.5 * spreads[False]


@pytest.mark.parametrize("val_size", [None, 40])
def test_validation_scores_seen_and_unseen_styles_apart(tmp_path, val_size):
    """val/seen/distance/* and val/unseen/distance/*: the evaluator's means over each group's
    (photo, style) pairs; with data.val_size, one whole photo per batch."""
    module = build_module()
    data = synthetic_data(2, f"data.val_size={val_size or 'null'}")
    trainer = pl.Trainer(logger=False, default_root_dir=tmp_path, enable_progress_bar=False)
    trainer.validate(module, data)

    assert len(data.val_set) == (1 if val_size is None else 2)  # 2 photos, stacked or one each
    evaluator = StyleEvaluator()
    module.eval()
    scores = {"seen": [], "unseen": []}
    with torch.no_grad():
        for content, styles, seen in data.val_set:
            embedding, _ = module.encode_styles(styles)
            for photo in content:
                for index, (style, row) in enumerate(zip(styles, embedding, strict=True)):
                    output = module(photo[None], row[None])
                    group = "seen" if index < seen else "unseen"
                    scores[group].append(evaluator(output, photo[None], style[None]))
    for group, group_scores in scores.items():
        assert len(group_scores) == 4  # 2 photos × 2 styles
        expected = sum(score["style"] for score in group_scores) / len(group_scores)
        logged = trainer.callback_metrics[f"val/{group}/distance/style"].item()
        assert logged == pytest.approx(expected, rel=1e-4)
    (grid,) = (tmp_path / "images").glob("*.png")
    side = val_size or 32
    assert load_image(grid).shape[-2:] == (3 * side + 4 * 2, 5 * side + 6 * 2)  # styles on top
