"""What the two trained methods share: fast (Johnson et al. 2016) and arbitrary (Ghiasi et al.
2017) both train a feed-forward network against the same perceptual loss (`nst.losses`).

`FeedForwardStyle` keeps the init arguments (plain values from `conf/feed_forward.yaml` and the
method's own file) as hyperparameters and checks them, builds the loss network and the loss,
lays the network out and compiles it as configured, and makes Adam with the schedule. A method
sets `self.transform` (and anything else it trains) and writes its steps.
"""

import pytorch_lightning as pl
import torch

from nst.losses import build_loss
from nst.methods.common import check_loss_weights
from nst.stability import check_stability_settings
from nst.training import adam_with_schedule
from nst.vgg import LossNetwork


class FeedForwardStyle(pl.LightningModule):
    """The base of `FastStyle` and `ArbitraryStyle`: call `super().__init__()` first."""

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

    def adam(self, parameters) -> dict:
        """Adam at `lr` (parameter groups may set their own) with the configured schedule."""
        max_steps = self._trainer.max_steps if self._trainer is not None else -1
        hparams = self.hparams
        return adam_with_schedule(
            parameters, hparams.lr, hparams.lr_schedule, hparams.warmup_steps, max_steps
        )
