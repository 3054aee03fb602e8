"""The basic method (Gatys et al. 2016): optimise the output image itself.

The LightningModule's only parameter is the image; a Lightning `Trainer` runs the optimiser for
`max_steps = iterations` steps, one L-BFGS (or Adam) iteration each.
"""

import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import convert_inf
from torch import Tensor, nn

from nst.allocator import reused_memory
from nst.errors import UserError
from nst.image import (
    finish_color_preservation,
    load_image,
    match_color_histogram,
    prepare_color_preservation,
    resize_long_side,
    save_image,
)
from nst.losses import PerceptualLoss, build_loss
from nst.methods.common import (
    accelerator,
    available_memory,
    check_loss_weights,
    check_style_weights,
    note_if_emulated,
    quiet_lightning,
    resolve_precision,
    torch_device,
)
from nst.methods.scales import (
    PeakMemoryReport,
    check_image_shape,
    out_of_memory_as_user_error,
    scale_sizes,
)
from nst.vgg import LossNetwork

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
# Peak memory per pixel of an optimisation, measured on this CPU with VGG19 and L-BFGS (peak RSS
# at 768×512 less 256×170: 2.4 KB/px), with a margin; fp32 activations of every layer kept.
BYTES_PER_PIXEL = 2600
CONVERGENCE_WINDOW = 10  # iterations the stopping rule averages the loss's fall over


class BasicStyle(pl.LightningModule):
    """Gatys et al. image optimisation: minimise the perceptual loss over the image's pixels."""

    def __init__(self, loss: PerceptualLoss, init: Tensor, optimizer: str = "lbfgs", lr=None):
        super().__init__()
        self.loss = loss
        self.image = nn.Parameter(init.detach().clone())
        self.optimizer_name = optimizer
        self.lr = DEFAULT_LR[optimizer] if lr is None else lr

    def training_step(self, batch, batch_idx: int) -> Tensor:
        terms = self.loss(self.image)
        self.log_dict(terms, prog_bar=True, on_step=True, on_epoch=False)
        return terms["total"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "lbfgs":
            # One iteration per step; no gradient/change tolerance so steps never silently no-op.
            return torch.optim.LBFGS(
                [self.image],
                lr=self.lr,
                max_iter=1,
                history_size=100,
                tolerance_grad=0.0,
                tolerance_change=0.0,
            )
        return torch.optim.Adam([self.image], lr=self.lr)


class StylizeProgressBar(TQDMProgressBar):
    """Lightning's progress bar, labelled for image optimisation instead of epochs."""

    def __init__(self, label: str = "Stylizing"):
        super().__init__()
        self.label = label

    @property
    def train_description(self) -> str:
        return self.label

    def on_train_epoch_start(self, trainer, *args) -> None:
        """One bar under `label` from the start (Lightning's would show "Training", then
        "Epoch 0", before any relabelling)."""
        self.train_progress_bar.reset(total=convert_inf(self.total_train_batches))


class SaveEvery(pl.Callback):
    """Write the image every `every` steps to `path_for(step)`, steps counted over all scales.

    `first_step` is the number of steps the earlier scales took; the last step of all
    (`last_step`) is left to the final output.
    """

    def __init__(
        self,
        every: int,
        path_for: Callable[[int], Path],
        finish: Callable,
        first_step: int = 0,
        last_step: int | None = None,
    ):
        self.every, self.path_for, self.finish = every, path_for, finish
        self.first_step, self.last_step = first_step, last_step

    def on_train_batch_end(self, trainer, module, *args) -> None:
        step = self.first_step + trainer.global_step
        last_step = trainer.max_steps if self.last_step is None else self.last_step
        if step % self.every == 0 and step < last_step:
            save_image(self.finish(module.image.detach()), self.path_for(step))


class StopWhenConverged(pl.Callback):
    """Stop an optimisation whose loss has stopped falling: when the total loss fell by less
    than `tolerance` (relative) per iteration, averaged over the last `window` iterations. Off
    at `tolerance` 0. `stopped_at` is the iteration it stopped at, else None."""

    def __init__(self, tolerance: float, window: int = CONVERGENCE_WINDOW, say: bool = True):
        self.tolerance, self.window, self.say = tolerance, window, say
        self.losses: deque[float] = deque(maxlen=window + 1)  # the window and the loss before it
        self.stopped_at: int | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, *args) -> None:
        self.losses.append(float(outputs["loss"]))
        if self.tolerance <= 0 or len(self.losses) <= self.window:
            return
        before, now = self.losses[0], self.losses[-1]
        if before - now <= self.tolerance * self.window * abs(before):
            trainer.should_stop = True
            self.stopped_at = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, module) -> None:
        """Say so after the progress bar has closed (this callback comes after it)."""
        if self.say and self.stopped_at is not None and self.stopped_at < trainer.max_steps:
            print(
                f"converged at iteration {self.stopped_at} of {trainer.max_steps}: the loss fell "
                f"less than {self.tolerance:g} per iteration over the last {self.window} "
                "(method.tolerance=0 runs them all).",
                file=sys.stderr,
            )


def check_config(method: DictConfig) -> None:
    """Raise a `UserError` for values the basic/improved methods cannot run with."""
    if not isinstance(method.iterations, int) or method.iterations <= 0:
        raise UserError(f"method.iterations must be a positive integer, got {method.iterations}.")
    if method.size is not None and (not isinstance(method.size, int) or method.size <= 0):
        raise UserError(f"size must be a positive integer, got {method.size}.")
    if method.style_scale <= 0:
        raise UserError(f"method.style_scale must be positive, got {method.style_scale}.")
    check_loss_weights(method)
    if method.optimizer not in OPTIMIZERS:
        raise UserError(f"Unknown method.optimizer '{method.optimizer}'; use lbfgs or adam.")
    if method.save_every < 0:
        raise UserError(f"method.save_every must be 0 (off) or positive, got {method.save_every}.")
    tolerance = method.tolerance
    if not isinstance(tolerance, int | float) or not 0 <= tolerance < 1:
        raise UserError(f"method.tolerance must be a number in [0, 1) (0: off), got {tolerance}.")


def initial_image(init: str, content: Tensor, styles: list[Tensor], seed: int) -> Tensor:
    """The starting image: `content`, `matched` (the photo recoloured to the first style's
    colour mean and covariance, Gatys et al. 2016 "Preserving Color" eq. 1 the other way round),
    `noise` (uniform, seeded), `style` or an image file."""
    if init == "content":
        return content.clone()
    if init == "matched":
        return match_color_histogram(content, styles[0]).clamp(0, 1)
    if init == "noise":
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=generator).to(content)
    image = styles[0] if init == "style" else load_image(init).to(content)
    return torch.nn.functional.interpolate(
        image, size=content.shape[-2:], mode="bicubic", antialias=True
    ).clamp(0, 1)


def starting_image(method: DictConfig, content: Tensor, styles: list[Tensor], seed: int) -> Tensor:
    """`initial_image` for the working images of colour preservation (gray for `luminance`)."""
    init = initial_image(method.init, content, styles, seed)
    if method.preserve_color == "luminance" and method.init not in ("content", "noise"):
        init, _ = prepare_color_preservation(init, [], "luminance")
    return init


def check_fits_in_memory(
    content_shape: Sequence[int], styles: list[Tensor], method: DictConfig, device: torch.device
) -> None:
    """Refuse, before any work, an optimisation whose images would not fit in memory, naming
    the largest `size=` that would: the peak is about `BYTES_PER_PIXEL` per pixel of the image
    being optimised and of the style images (VGG activations kept for the backward pass)."""
    height, width = content_shape[-2:]
    long_side = method.size or max(height, width)
    pixels = height * width * (long_side / max(height, width)) ** 2
    style_side = long_side * method.style_scale
    style_pixels = sum(
        style.shape[-1] * style.shape[-2] * (style_side / max(style.shape[-2:])) ** 2
        for style in styles
    )
    needed = (pixels + style_pixels) * BYTES_PER_PIXEL
    available = available_memory(device)
    if needed > available:
        largest = int(long_side * (available / needed) ** 0.5) // 16 * 16
        raise UserError(
            f"size={long_side} needs about {needed / 2**30:.0f} GiB for the optimisation and "
            f"{available / 2**30:.1f} GiB is free on {device.type}; the largest size that fits "
            f"is about size={largest}."
        )


def optimize_image(
    content: Tensor,
    styles: list[Tensor],
    method: DictConfig,
    loss_net: DictConfig,
    style_weights: Sequence[float] | None = None,
    device: str = "auto",
    seed: int = 0,
    snapshot_path: Callable[[int], Path] | None = None,
    progress: bool = True,
    callbacks: Sequence[pl.Callback] = (),
    build: Callable[[DictConfig, LossNetwork], PerceptualLoss] = build_loss,
    precision: str = "fp32",
) -> Tensor:
    """Stylise `content` with `styles` by optimising the image; returns 1×3×H×W in [0, 1].

    `content` and `styles` come at any size: content is resized to `method.size` (long side),
    styles to `method.size × method.style_scale`. With `method.scales` the image is optimised
    for `method.iterations` steps at each scale's size in turn, upsampled from one to the next.
    `precision` bf16 or fp16 runs the VGG passes under autocast (auto: fp32); the image,
    L-BFGS's state and the loss sums stay in fp32, so the line search sees consistent values.
    """
    check_config(method)
    check_style_weights(styles, style_weights)
    quiet_lightning()
    target_device = torch_device(device)
    precision = resolve_precision(precision, target_device, network=False)
    note_if_emulated(precision, target_device)
    check_fits_in_memory(content.shape, styles, method, target_device)
    if method.size is not None:
        content = resize_long_side(content, method.size)
    sizes = scale_sizes(method.get("scales"), max(content.shape[-2:]))
    loss_network = LossNetwork(loss_net.arch, loss_net.weights, method.pooling, precision)
    loss = build(method, loss_network).to(target_device)
    mode = method.preserve_color
    image = None
    for index, size in enumerate(sizes):
        scale_content, work_content, work_styles = scale_images(content, styles, size, method)
        if image is None:
            init = starting_image(method, work_content, work_styles, seed)
        else:
            init = F.interpolate(image, size=work_content.shape[-2:], mode="bicubic").clamp(0, 1)

        def finish(image: Tensor, scale_content: Tensor = scale_content) -> Tensor:
            return finish_color_preservation(image.clamp(0, 1).cpu(), scale_content, mode)

        scale_callbacks = [*callbacks, *progress_callbacks(progress, index, sizes, target_device)]
        scale_callbacks.append(StopWhenConverged(method.tolerance, say=progress))
        if method.save_every and snapshot_path is not None:
            first, last = index * method.iterations, len(sizes) * method.iterations
            scale_callbacks.append(SaveEvery(method.save_every, snapshot_path, finish, first, last))
        height, width = work_content.shape[-2:]
        with out_of_memory_as_user_error(height, width, target_device):
            loss.set_content(work_content.to(target_device))
            loss.set_style([style.to(target_device) for style in work_styles], style_weights)
            module = BasicStyle(loss, init.to(target_device), method.optimizer, method.lr)
            fit(module, method.iterations, device, progress, scale_callbacks)
        image = module.image.detach()
    return finish_color_preservation(image.clamp(0, 1).cpu(), content, mode)


def scale_images(
    content: Tensor, styles: list[Tensor], size: int, method: DictConfig
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Content at long side `size`, and the content and styles to optimise with at that scale.

    Styles are resized to `size × method.style_scale`; colour preservation prepares both.
    """
    scale_content = resize_long_side(content, size)
    check_image_shape(*scale_content.shape[-2:])
    style_size = round(size * method.style_scale)
    scale_styles = [resize_long_side(style, style_size) for style in styles]
    work_content, work_styles = prepare_color_preservation(
        scale_content, scale_styles, method.preserve_color
    )
    return scale_content, work_content, work_styles


def progress_callbacks(
    progress: bool, index: int, sizes: list[int], device: torch.device
) -> list[pl.Callback]:
    """The progress bar of scale `index` (and its peak GPU memory line on CUDA), if `progress`."""
    if not progress:
        return []
    label = "Stylizing" if len(sizes) == 1 else f"Stylizing {index + 1}/{len(sizes)}"
    report = [PeakMemoryReport()] if device.type == "cuda" else []
    return [StylizeProgressBar(label), *report]


def fit(
    module: BasicStyle, steps: int, device: str, progress: bool, callbacks: list[pl.Callback]
) -> None:
    """Run `steps` optimiser steps on `module` with a Lightning Trainer (no logs or checkpoints)."""
    trainer = pl.Trainer(
        accelerator=accelerator(device),
        devices=1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        callbacks=callbacks,
        num_sanity_val_steps=0,
    )
    with reused_memory():  # every step allocates the same maps: keep their pages
        trainer.fit(module, train_dataloaders=[0] * steps)
