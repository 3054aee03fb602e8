"""Multi-scale image optimisation: the schedule of sizes, out-of-memory errors, peak memory.

The basic and improved methods can optimise at a small size first, upsample the result and
continue at larger sizes up to the requested one (`method.scales`): the coarse scales settle the
large structures cheaply, so large outputs avoid the blotchy textures of single-scale runs.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from nst.errors import UserError

SMALLEST_SCALE = 16  # px on each side: VGG's four poolings leave relu5_x one position
OUT_OF_MEMORY_MARKERS = ("out of memory", "not enough memory")


def scale_sizes(scales, final_size: int) -> list[int]:
    """The long sides to optimise at, smallest first, ending at `final_size`.

    `scales` is null (one scale), a number N (N sizes an octave apart: final/2^(N−1), …, final)
    or a list of increasing long sides in px (`final_size` is appended when the list stops
    short of it). Anything else is a `UserError`.
    """
    if scales is None:
        return [final_size]
    if isinstance(scales, int) and not isinstance(scales, bool):
        if scales < 1:
            raise UserError(f"method.scales={scales} octaves: give at least 1.")
        sizes = [round(final_size / 2**octave) for octave in reversed(range(scales))]
    elif OmegaConf.is_list(scales) or isinstance(scales, (list, tuple)):
        sizes = list(scales)
        if not sizes or not all(isinstance(size, int) and size > 0 for size in sizes):
            raise UserError(f"method.scales {sizes} must be positive whole numbers of pixels.")
        if sizes != sorted(set(sizes)):
            raise UserError(f"method.scales {sizes} must increase from one scale to the next.")
        if sizes[-1] > final_size:
            raise UserError(f"method.scales {sizes} go beyond the output size {final_size} px.")
        sizes += [] if sizes[-1] == final_size else [final_size]
    else:
        raise UserError(
            f"Unknown method.scales '{scales}'; use a number of octaves (e.g. 3) or a list of "
            "long sides in px (e.g. [256,512,1024])."
        )
    if sizes[0] < SMALLEST_SCALE:
        raise UserError(
            f"method.scales start at {sizes[0]} px, below the smallest usable "
            f"{SMALLEST_SCALE} px; use fewer octaves or larger sizes."
        )
    return sizes


def check_image_shape(height: int, width: int) -> None:
    """Raise a `UserError` if an image is too small on either side for VGG's deepest layers."""
    if min(height, width) < SMALLEST_SCALE:
        raise UserError(
            f"A {width}×{height} px image is too small for the loss network (at least "
            f"{SMALLEST_SCALE} px on each side); use a larger size or method.scales."
        )


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is a GPU or CPU allocation failure (CUDA OOM, CPU 'not enough memory')."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(
        marker in str(error) for marker in OUT_OF_MEMORY_MARKERS
    )


@contextmanager
def out_of_memory_as_user_error(height: int, width: int, device: torch.device) -> Iterator[None]:
    """Turn an allocation failure inside the block into a `UserError` naming the size.

    The error is raised outside the `except` clause, so no traceback keeps the failed step's
    tensors alive, and the CUDA cache is emptied for the caller.
    """
    try:
        yield
        return
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
    if device.type == "cuda":
        torch.cuda.empty_cache()
    raise UserError(
        f"Out of memory optimising a {width}×{height} px image on {device.type}; use a smaller "
        "size (or method.scales ending lower), or a device with more memory."
    )


class PeakMemoryReport(pl.Callback):
    """Print the peak GPU memory of each `fit` (one per scale) with the image's size, to stderr."""

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        torch.cuda.reset_peak_memory_stats(module.device)

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        height, width = module.image.shape[-2:]
        peak = torch.cuda.max_memory_allocated(module.device) / 2**30
        print(f"nst: {width}×{height} px: peak GPU memory {peak:.2f} GiB", file=sys.stderr)
