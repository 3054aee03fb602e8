"""The fast method (Johnson et al. 2016): train an image transform network for one style.

§3 of the paper: a transform network f_W maps a content photo y_c to ŷ = f_W(y_c); a frozen VGG
loss network scores ŷ against the photo itself (feature reconstruction loss, relu2_2) and against
the style image (Gram matrices at relu1_2, relu2_2, relu3_3, relu4_3), plus total variation, and
Adam trains W on batches of photos. Stylising is then one forward pass (`nst.inference`).
"""

import torch
from torch import Tensor

from nst.errors import UserError
from nst.image import load_image
from nst.methods.common import check_style_weights
from nst.methods.feed_forward import FeedForwardStyle
from nst.networks import TransformNet
from nst.stability import add_stability_term
from nst.training import image_grid, log_image_grid


def style_paths(style: dict) -> list[str]:
    """The style's image path(s): `style.image` is one path or a list of them."""
    images = style["image"]
    return [str(images)] if isinstance(images, str) else [str(path) for path in images]


def load_teacher(source: str, style: dict) -> TransformNet:
    """The frozen `TransformNet` of `source` (a zoo name or fast checkpoint), which must have
    been trained on the run's style, for `teacher=` distillation."""
    from nst.inference import load_stylizer  # inference needs no training code; not the reverse

    stylizer = load_stylizer(source, kind="fast")
    if stylizer.style_name != style.get("name"):
        raise UserError(
            f"method.teacher={source} was trained on {stylizer.style_name}, not on "
            f"style={style.get('name')}: pass style={stylizer.style_name}."
        )
    return stylizer.network.eval().requires_grad_(False)


class FastStyle(FeedForwardStyle):
    """Trains a `TransformNet` for one style (Johnson et al. 2016, §3, eq. 3 with λ_TV).

    Loss: λ_c·ℓ_feat(relu2_2) + λ_s·Σ_j ℓ_style(j) + λ_TV·TV, with the relative losses of
    `nst.losses`, plus λ_stab·L_stab, the flow-free temporal stability loss of `nst.stability`
    (Wang et al. 2020) when `stability_weight` > 0, logged as the term `stability`. The VGG and
    the style's Gram targets are non-persistent buffers, so the checkpoint's `state_dict` is the
    transform network alone; the init arguments (plain Python values) are its
    `hyper_parameters`, which is all `nst.inference` needs to rebuild it.
    """

    def __init__(
        self, network: dict, style: dict | None, teacher: str | None = None, **settings
    ) -> None:
        """`settings` are the keys every feed-forward method takes (conf/feed_forward.yaml: loss
        weights and layers, lr and schedule, speed and stability switches) and this method's
        `name`, `content_layers` and `pooling` (conf/method/fast.yaml); all become hparams."""
        super().__init__()
        if not style:
            raise UserError(
                "method=fast trains one network per style: add style=NAME (one of conf/styles/, "
                "e.g. style=wave) or style=PATH to any image."
            )
        check_style_weights(style_paths(style), style.get("blend"))
        self.transform = TransformNet(**network).to(memory_format=self.memory_format)
        self.build_loss()
        # Plain attributes, not buffers: the style images never enter a checkpoint.
        self.style_images = [load_image(path, style["size"]) for path in style_paths(style)]
        if teacher and not self.hparams.distill_weight > 0:
            raise UserError(
                f"method.distill_weight must be positive, got {self.hparams.distill_weight}."
            )
        # In a list, not a submodule: the teacher never enters a checkpoint either.
        self.teachers = [load_teacher(teacher, style)] if teacher else []

    def setup(self, stage: str) -> None:
        """Encode the style's Gram targets once (before Lightning moves the module to a device)."""
        self.loss.set_style(self.style_images, self.hparams.style.get("blend"))
        super().setup(stage)

    def on_fit_start(self) -> None:
        for teacher in self.teachers:
            teacher.to(self.device)

    def forward(self, content: Tensor) -> Tensor:
        return self.transform(content.contiguous(memory_format=self.memory_format))

    def step(self, content: Tensor, prefix: str) -> tuple[Tensor, dict[str, Tensor]]:
        """Stylise a batch and log its loss terms as `<prefix>/<term>`; returns output and terms."""
        output = self(content)
        if self.teachers and self.hparams.distill_only:  # pixel-space distillation: no VGG
            terms = {"distill": self.distill_term(content, output)}
            terms["total"] = terms["distill"]
        else:  # the VGG runs fastest in the default layout on CPU, whatever the transform net's
            terms = self.loss(output.contiguous(), content=content.contiguous())
            if self.teachers:
                terms["distill"] = self.distill_term(content, output)
                terms["total"] = terms["total"] + terms["distill"]
        add_stability_term(terms, self, content, output, self.hparams)
        logged = {f"{prefix}/{name}": value for name, value in terms.items()}
        self.log_dict(logged, sync_dist=prefix == "val")  # val: averaged over DDP processes
        return output, terms

    def distill_term(self, content: Tensor, output: Tensor) -> Tensor:
        """λ_distill·MSE to the teacher's output on the same photos (Hinton et al. 2015's
        distillation, in pixel space)."""
        with torch.no_grad():
            target = self.teachers[0](content.contiguous())
        mse = torch.nn.functional.mse_loss(output.float(), target.float())
        return self.hparams.distill_weight * mse

    def training_step(self, content: Tensor, batch_index: int) -> Tensor:
        _, terms = self.step(content, "train")
        self.log("loss", terms["total"], prog_bar=True, logger=False)
        return terms["total"]

    def on_validation_epoch_start(self) -> None:
        self.grid_pairs = []

    def validation_step(self, content: Tensor, batch_index: int) -> None:
        output, _ = self.step(content, "val")
        if len(self.style_images) == 1:  # the evaluator scores one style, not a blend
            style = self.style_images[0].to(output.device).expand(len(output), -1, -1, -1)
            self.update_distances("all", output, content, style)
        self.grid_pairs += zip(content, output, strict=True)

    def on_validation_epoch_end(self) -> None:
        """Log the evaluator's distances, and save the photos above their stylised versions to
        `<run dir>/images/step<N>.png` and the loggers."""
        super().on_validation_epoch_end()
        if self.grid_pairs:
            photos, outputs = zip(*self.grid_pairs, strict=True)
            log_image_grid(self.trainer, image_grid([list(photos), list(outputs)]))

    def configure_optimizers(self) -> dict:
        return self.adam(self.transform.parameters())
