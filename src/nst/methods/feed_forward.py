"""What the two trained methods share: fast (Johnson et al. 2016) and arbitrary (Ghiasi et al.
2017) both train a feed-forward network against the same perceptual loss (`nst.losses`).

`FeedForwardStyle` keeps the init arguments (plain values from `conf/feed_forward.yaml` and the
method's own file) as hyperparameters and checks them, builds the loss network and the loss,
lays the network out and compiles it as configured, and makes Adam with the schedule. A method
sets `self.transform` (and anything else it trains) and writes its steps.
"""

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from nst.evaluate import StyleDistances
from nst.losses import build_loss
from nst.methods.common import check_loss_weights
from nst.stability import check_stability_settings
from nst.training import adam_with_schedule
from nst.vgg import LossNetwork


class FeedForwardStyle(pl.LightningModule):
    """The base of `FastStyle` and `ArbitraryStyle`: call `super().__init__()` first.

    With `val_distances` on, validation also scores the outputs with the project's evaluator
    (Caffe VGG19, `nst.evaluate.StyleDistances`) per group of `distance_groups`, the numbers
    the quality bars are set in.
    """

    distance_groups: tuple[str, ...] = ("all",)

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()  # the subclass's init arguments (Lightning reads its frame)
        check_loss_weights(self.hparams)
        check_stability_settings(self.hparams)
        self.memory_format = (
            torch.channels_last if self.hparams.channels_last else torch.contiguous_format
        )

    def build_loss(self) -> LossNetwork:
        """Set `self.loss` (the frozen VGG of `loss_net` and the configured perceptual loss);
        returns the VGG, for whatever else reads it."""
        loss_net = self.hparams.loss_net
        loss_network = LossNetwork(loss_net["arch"], loss_net["weights"], self.hparams.pooling)
        self.loss = build_loss(self.hparams, loss_network)
        return loss_network

    def setup(self, stage: str) -> None:
        if self.hparams.compile:
            self.transform.compile()
            self.loss.compile()
        if self.hparams.val_distances and stage in ("fit", "validate"):
            # Built here, not in __init__: stylising from a checkpoint never needs it.
            network = LossNetwork("vgg19", "caffe", pooling="max")
            groups = self.distance_groups
            self.distances = nn.ModuleDict({g: StyleDistances(network=network) for g in groups})

    def update_distances(self, group: str, output: Tensor, content: Tensor, style: Tensor) -> None:
        """Score validation outputs with the evaluator (`nst.evaluate`), one style per image."""
        if hasattr(self, "distances"):
            self.distances[group].update(output.float(), content.float(), style.float())

    def on_validation_epoch_end(self) -> None:
        """Log the evaluator's means as `val/[GROUP/]distance/{content,style,ssim}` (synced across
        DDP processes by torchmetrics), then start afresh for the next validation."""
        for group, metric in getattr(self, "distances", {}).items():
            if metric.update_called:
                prefix = f"val/{group}/distance" if group != "all" else "val/distance"
                values = {f"{prefix}/{name}": value for name, value in metric.compute().items()}
                self.log_dict(values, sync_dist=False)
            metric.reset()

    def adam(self, parameters) -> dict:
        """Adam at `lr` (parameter groups may set their own) with the configured schedule."""
        max_steps = self._trainer.max_steps if self._trainer is not None else -1
        hparams = self.hparams
        return adam_with_schedule(
            parameters, hparams.lr, hparams.lr_schedule, hparams.warmup_steps, max_steps
        )
