"""The fast method: training lowers the loss, checkpoints are small, safe and round-trip."""

import pytest
import pytorch_lightning as pl
import torch
from conftest import ASSETS, load_script, pattern, tiny_fast_checkpoint, wrong_kind_checkpoints
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from nst.api import compose_config
from nst.data import ContentDataModule
from nst.errors import UserError, user_error_cause
from nst.evaluate import StyleEvaluator
from nst.image import load_image
from nst.inference import load_stylizer, read_checkpoint
from nst.methods.fast import FastStyle

STYLE_DIR = ASSETS / "images" / "style"
train_script = load_script("train")


def fast_config(*overrides, style: str | None = "wave"):
    styles = [f"style={style}", "style.size=64"] if style else []
    arguments = [
        "method=fast",
        *styles,
        "loss_net.weights=random",
        f"style_dir={STYLE_DIR}",
        "method.network.channels=8",
        *overrides,
    ]
    return compose_config("train", train_script.style_overrides(arguments))


def build_module(*overrides, style: str | None = "wave") -> FastStyle:
    """FastStyle as train.py builds it; a UserError comes out unwrapped, as the CLI prints it."""
    try:
        return instantiate(fast_config(*overrides, style=style).method, _convert_="all")
    except InstantiationException as error:
        raise user_error_cause(error) or error from None


def test_config_has_the_papers_layers_and_vgg16():
    cfg = compose_config("train", ["method=fast", "styles@style=wave"])
    assert cfg.loss_net.arch == "vgg16"
    assert list(cfg.method.content_layers) == ["relu2_2"]
    assert list(cfg.method.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert cfg.method.lr == 1e-3 and cfg.data.batch_size == 4 and cfg.trainer.max_steps == 40000
    assert cfg.data.size == cfg.data.crop == 256


def test_every_named_style_names_an_existing_image():
    names = sorted(path.stem for path in train_script.STYLES.glob("*.yaml"))
    assert {
        "wave",
        "candy",
        "mosaic",
        "udnie",
        "rain_princess",
        "la_muse",
        "the_scream",
        "starry_night",
    } <= set(names)
    for name in names:
        if name != "file":
            style = fast_config(style=name).style
            assert style.name == name and (STYLE_DIR / style.image.split("/")[-1]).is_file()


def test_style_names_and_paths_become_group_overrides(tmp_path):
    image = f"{tmp_path}/my art.jpg"
    assert train_script.style_overrides(["style=wave", f"style={image}", "seed=1"]) == [
        "styles@style=wave",
        "styles@style=file",
        f"style.image={image}",
        "style.name=my art",
        "seed=1",
    ]
    assert train_script.style_overrides(["style=wave,candy"]) == ["styles@style=wave,candy"]
    style = fast_config(style=image).style
    assert style.image == image and style.size == 64 and style.name == "my art"


def test_stylize_keeps_style_as_a_plain_path():
    """The named styles must not turn stylize.py's style=PATH into a config group choice."""
    assert compose_config("stylize", ["style=wave.jpg"]).style == "wave.jpg"


def test_a_few_steps_lower_the_loss_on_synthetic_data():
    torch.manual_seed(0)
    module = build_module()
    module.setup("fit")
    data = ContentDataModule(synthetic=4, size=32, crop=32, batch_size=4, workers=0, val_images=0)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    module.trainer = pl.Trainer(max_steps=6, logger=False, enable_progress_bar=False)
    optimizer = module.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(6):
        output = module(batch)
        loss = module.loss(output, content=batch)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert not any(p.grad is not None for p in module.loss.parameters())  # VGG stays frozen


def test_checkpoint_is_the_transform_net_only_and_round_trips(tmp_path):
    torch.manual_seed(0)
    module = build_module()
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, save_top_k=0, save_last=True, save_weights_only=True
    )
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        callbacks=[checkpoint],
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = ContentDataModule(synthetic=6, size=32, crop=32, batch_size=2, workers=0, val_images=0)
    trainer.fit(module, datamodule=data)

    raw = read_checkpoint(tmp_path / "last.ckpt")  # torch.load(..., weights_only=True)
    assert "optimizer_states" not in raw
    assert all(key.startswith("transform.") for key in raw["state_dict"])
    assert raw["hyper_parameters"]["name"] == "fast"
    assert OmegaConf.is_config(raw["hyper_parameters"]) is False
    stylizer = load_stylizer(tmp_path / "last.ckpt")
    network = stylizer.network
    assert stylizer.hparams["style"]["name"] == "wave"
    image = torch.rand(1, 3, 29, 35)
    with torch.no_grad():
        torch.testing.assert_close(network(image), module.transform.eval()(image))
    size = (tmp_path / "last.ckpt").stat().st_size
    parameters = sum(p.numel() for p in network.parameters())
    assert size < 4 * parameters * 1.1  # the float32 weights and little else


def test_wrong_corrupt_and_missing_checkpoints_are_user_errors(tmp_path):
    for name, message in wrong_kind_checkpoints(tmp_path):
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_stylizer(tmp_path / name, kind="fast")


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.style_layers=[relu9_1]", "relu9_1"),
        ("method.lr=0", "lr must be positive"),
        ("method.style_weight=-1", "style_weight must be positive"),
        ("method.tv_weight=-1", "tv_weight must be zero or positive"),
        ("style.blend=[0.5,0.5]", "1 style images but 2 style_weights"),
        ("method.network.norm=layer", "Unknown network norm"),
        ("style.image=/nowhere/painting.jpg", "Image not found"),
    ],
)
def test_bad_method_settings_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        build_module(override)


def test_training_without_a_style_is_a_user_error():
    with pytest.raises(UserError, match="trains one network per style"):
        build_module(style=None)


def test_validation_scores_whole_photos_with_the_evaluator(tmp_path):
    """data.val_size: held-out photos of both orientations, whole at that long side, one per
    batch; val/distance/* are the means of the evaluator's per-photo numbers (nst.evaluate)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("test_100007.jpg", "test_100039.jpg", "test_101084.jpg", "test_104010.jpg"):
        (photos / name).write_bytes((ASSETS / "datasets" / "content_bsds500" / name).read_bytes())
    data = ContentDataModule(
        path=str(photos),
        split="test",
        size=32,
        crop=32,
        workers=0,
        val_images=3,
        val_size=40,
        preprocess=False,
    )
    module = build_module()
    trainer = pl.Trainer(logger=False, default_root_dir=tmp_path, enable_progress_bar=False)
    trainer.validate(module, data)

    shapes = {tuple(photo.shape) for photo in data.val_set}
    assert {max(shape) for shape in shapes} == {40} and len(shapes) == 2, shapes  # both ways up
    evaluator = StyleEvaluator()
    with torch.no_grad():
        scores = [evaluator(module(p[None]), p[None], module.style_images[0]) for p in data.val_set]
    for name in ("style", "content", "ssim"):
        expected = sum(score[name] for score in scores) / len(scores)
        assert trainer.callback_metrics[f"val/distance/{name}"].item() == pytest.approx(expected)
    (grid,) = (tmp_path / "images").glob("*.png")
    assert load_image(grid).shape[-2:] == (2 * 40 + 3 * 2, 3 * 40 + 4 * 2)  # photos over outputs


def test_a_thinner_network_distils_a_teacher_and_keeps_it_out_of_the_checkpoint(tmp_path):
    """method.teacher: the loss is the pixel MSE to the teacher's output (the VGG is not run),
    a few steps bring the student closer, and only the student is saved."""
    teacher = tiny_fast_checkpoint(tmp_path / "teacher.ckpt", style="wave", seed=3)
    torch.manual_seed(0)
    module = build_module(f"method.teacher={teacher}", "method.network.channels=4")
    module.on_fit_start()
    photos = torch.cat([pattern(32, 32, seed=seed) for seed in range(4)])
    optimizer = torch.optim.Adam(module.transform.parameters(), lr=5e-3)
    module.loss.forward = None  # the perceptual loss must not be called
    module.log_dict = lambda *args, **kwargs: None
    losses = []
    for _ in range(40):
        _, terms = module.step(photos, "train")
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append(terms["distill"].item())
    assert set(terms) == {"distill", "total"} and losses[-1] < 0.5 * losses[0], losses
    assert all(key.startswith("transform.") for key in module.state_dict())
    assert not any(p.requires_grad for p in module.teachers[0].parameters())
    with pytest.raises(UserError, match="trained on wave, not on style=udnie"):
        build_module(f"method.teacher={teacher}", style="udnie")


def test_distillation_can_keep_the_perceptual_loss_beside_the_pixel_term(tmp_path):
    """method.distill_only=false: the terms are the perceptual loss's plus λ_distill·MSE to the
    teacher, and their sum is the total; a non-positive λ_distill is one sentence."""
    teacher = tiny_fast_checkpoint(tmp_path / "teacher.ckpt", style="wave", seed=3)
    overrides = (f"method.teacher={teacher}", "method.network.channels=4")
    module = build_module(*overrides, "method.distill_only=false", "method.distill_weight=100")
    module.setup("fit")
    module.on_fit_start()
    module.log_dict = lambda *args, **kwargs: None
    photos = torch.cat([pattern(32, 32, seed=seed) for seed in range(2)])
    output, terms = module.step(photos, "train")
    assert set(terms) == {"content", "style", "tv", "distill", "total"}
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(output, module.teachers[0](photos))
    assert terms["distill"].item() == pytest.approx(100 * mse.item(), rel=1e-4)
    parts = terms["content"] + terms["style"] + terms["tv"] + terms["distill"]
    assert terms["total"].item() == pytest.approx(parts.item(), rel=1e-5)
    with pytest.raises(UserError, match="distill_weight must be positive"):
        build_module(*overrides, "method.distill_weight=0")
