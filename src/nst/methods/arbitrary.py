"""The arbitrary method (Ghiasi et al. 2017): one network for any style image.

§3 of the paper: a style prediction network P maps a style image s to an embedding S = P(s); a
style transfer network T(c, S) stylises a content photo c with conditional instance norms whose
γ, β are linear in S. P and T train together on pairs (content photo, painting) with the loss of
Johnson et al. against that pair, so at test time any painting, seen or not, is one forward
pass of P and one of T. The default P reads the frozen VGG loss network (`nst.predictors`).
"""

from functools import partial

import torch
from torch import Tensor

from nst.image import resize_long_side
from nst.methods.feed_forward import FeedForwardStyle
from nst.networks import ConditionalTransformNet
from nst.predictors import VGGPredictor, build_predictor
from nst.stability import add_stability_term
from nst.training import image_grid, log_image_grid
from nst.vgg import LossNetwork


def resolved_loss_net(loss_network: LossNetwork, loss_net: dict) -> dict:
    """The VGG a checkpoint must rebuild: the weights `auto` resolved to (caffe or torchvision)."""
    source = loss_network.source
    weights = loss_net["weights"] if source == "file" else source
    return {"arch": loss_network.arch, "weights": weights}


class ArbitraryStyle(FeedForwardStyle):
    """Trains a style predictor P and a CIN transfer network T (Ghiasi et al. 2017, §3, eq. 4).

    Loss per pair: λ_c·ℓ_content(T(c, P(s)), c) + λ_s·ℓ_style(T(c, P(s)), s) + λ_TV·TV, the
    perceptual loss of the fast method with one style target per batch element (`nst.losses`),
    plus λ_stab·L_stab (`nst.stability`, for video) when `stability_weight` > 0.
    The VGG is a non-persistent buffer shared by the loss and the default predictor, so the
    checkpoint's `state_dict` is T and P's trainable part; `hyper_parameters` say which VGG
    (arch and resolved weight source) P needs at stylise time.
    """

    distance_groups = ("seen", "unseen")

    def __init__(self, network: dict, predictor: dict, loss_net: dict, **settings) -> None:
        """`settings` are the keys every feed-forward method takes (conf/feed_forward.yaml) and
        this method's own (conf/method/arbitrary.yaml: layers, pooling, `predictor_lr`, …)."""
        super().__init__()
        loss_network = self.build_loss()
        self.hparams.loss_net = resolved_loss_net(loss_network, loss_net)
        self.predictor = build_predictor(predictor, loss_network)
        self.transform = ConditionalTransformNet(
            **network, embedding_size=predictor["embedding_size"]
        )
        self.to(memory_format=self.memory_format)

    def encode_styles(self, style: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(S = P(style), the style targets) of a style batch, with one VGG pass for both."""
        style = style.contiguous(memory_format=self.memory_format)
        if not isinstance(self.predictor, VGGPredictor):
            return self.predictor(style), self.loss.encode_style(style)
        with torch.no_grad():
            layers = set(self.loss.style_layers) | set(self.predictor.layers)
            features = self.loss.loss_network(style, layers)
            targets = self.loss.style_representation(features)
        return self.predictor.from_features(features), targets

    def forward(self, content: Tensor, embedding: Tensor) -> Tensor:
        return self.transform(content.contiguous(memory_format=self.memory_format), embedding)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_index: int) -> Tensor:
        content, style = batch
        embedding, targets = self.encode_styles(style)
        output = self(content, embedding)
        terms = self.loss(output, content=content, style=targets)
        add_stability_term(terms, partial(self, embedding=embedding), content, output, self.hparams)
        self.log_dict({f"train/{name}": value for name, value in terms.items()})
        self.log("loss", terms["total"], prog_bar=True, logger=False)
        return terms["total"]

    def on_validation_epoch_start(self) -> None:
        self.grid_styles, self.grid_rows = None, []

    def validation_step(self, batch: tuple[Tensor, Tensor, int], batch_index: int) -> None:
        """Every photo with every grid style; losses and the evaluator's distances logged apart
        for seen and unseen styles."""
        content, styles, seen = batch
        embedding, targets = self.encode_styles(styles)
        count = len(styles)
        photos = content.repeat_interleave(count, 0)
        output = self(photos, embedding.repeat(len(content), 1))
        is_seen = torch.arange(len(output), device=output.device) % count < int(seen)
        for group, mask in (("seen", is_seen), ("unseen", ~is_seen)):
            if mask.any():
                pair_targets = {
                    key: value.repeat(len(content), 1, 1)[mask] for key, value in targets.items()
                }
                terms = self.loss(output[mask], content=photos[mask], style=pair_targets)
                self.log_dict(
                    {f"val/{group}/{name}": value for name, value in terms.items()},
                    batch_size=int(mask.sum()),
                )
                pair_styles = styles.repeat(len(content), 1, 1, 1)[mask]
                self.update_distances(group, output[mask], photos[mask], pair_styles)
        self.grid_styles = styles
        rows = output.split(count)  # one row of stylisations per photo
        self.grid_rows += [[photo, *row] for photo, row in zip(content, rows, strict=True)]

    def on_validation_epoch_end(self) -> None:
        """Log the evaluator's distances, and save the grid (styles along the top, seen before
        unseen; each photo down the left with its stylisations across its row) to
        `<run dir>/images/step<N>.png` and the loggers."""
        super().on_validation_epoch_end()
        if self.grid_rows:
            side = max(max(row[0].shape[-2:]) for row in self.grid_rows)
            styles = list(resize_long_side(self.grid_styles.float(), side))
            blank = torch.ones_like(styles[0][:, :1, :1])  # padded to a white cell
            log_image_grid(self.trainer, image_grid([[blank, *styles], *self.grid_rows]))

    def configure_optimizers(self) -> dict:
        predictor_lr = self.hparams.predictor_lr or self.hparams.lr
        return self.adam(
            [
                {"params": list(self.transform.parameters())},
                {"params": list(self.predictor.parameters()), "lr": predictor_lr},
            ]
        )
