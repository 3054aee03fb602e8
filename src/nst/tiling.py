"""Exact tiled stylisation: a feed-forward style network over an image of any size in bounded
memory, with every normalisation statistic taken over the whole image.

Cutting an image into tiles and stylising each on its own changes the result: instance norm
(Ulyanov et al. 2016, y = γ (x − μ)/√(σ² + ε) + β with μ, σ² per image and channel) and
conditional instance norm (Dumoulin et al. 2017, the same with γ_s, β_s of a style) would see
each tile's own μ, σ², and seams and colour jumps appear. Here the network runs layer by layer
instead. Each conv is evaluated tile by tile over its whole output, every tile read with the halo
its kernel needs (reflection padding at the image border, the nearest-neighbour ×2 upsampling
and the forward's pad-to-a-multiple-of-4 folded into the indices it reads), and the raw conv
output is stored whole while μ and σ² accumulate over the tiles (Chan et al.'s pairwise update,
in float64). The norm, its ReLU and a residual sum are applied when the next layer reads its
tiles, so each conv is computed once. Batch norm in eval mode is a fixed per-channel map.

Where the whole-image activations live is what bounds memory: float32 in memory when they fit
`max_memory`, else float16 in memory (the statistics are still taken from the float32 conv
outputs; only the stored values are rounded), else float16 in a memory-mapped temporary file,
whose pages are handed back to the kernel after each band of tiles (`madvise(MADV_DONTNEED)`),
so the resident set stays a few bands deep. Float32 storage gives the untiled output to float
rounding (max abs difference ~1e-6); float16 storage to a few 1e-4.

`forward_within_memory` runs the network as usual when its untiled forward fits the budget and
tiles otherwise; `tiled_forward` always tiles.
"""

import mmap
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.errors import UserError
from nst.networks import (
    MULTIPLE,
    ConditionalConvLayer,
    ConditionalInstanceNorm,
    ConditionalResidualBlock,
    ConditionalTransformNet,
    ResidualBlock,
    TransformNet,
)

GIB = 1024**3
DEFAULT_MAX_MEMORY = 5 * GIB // 2  # 6000×4000 with float16 storage in memory: ~3.3 GiB peak RSS
STORAGES = ("float32", "float16", "disk", "disk-float32")  # tried in this order, but the last
AUTOMATIC_STORAGES = STORAGES[:3]
LARGEST_TILE = 512  # output tile side; larger tiles no longer amortise the halo noticeably
GOOD_TILE = 128  # a storage is chosen only if tiles at least this large fit beside it
SMALLEST_TILE = 16
ProgressCallback = Callable[[int, int], None]


def parse_memory(value: int | float | str | None) -> int | None:
    """Bytes from `4GiB`, `2.5GB`, `512MiB`, `800MB`, or a number of bytes; None stays None."""
    if value is None or isinstance(value, int | float):
        return None if value is None else int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise UserError(f"max_memory={value} is not a size; write it like 4GiB, 2.5GB or 800MB.")
    number, prefix, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** " KMGT".index(prefix.upper() or " "))


def describe_bytes(size: float) -> str:
    if size >= GIB / 10:
        return f"{size / GIB:.2f} GiB"
    return f"{size / 1024**2:.0f} MiB" if size >= 1024**2 else f"{size / 1024:.0f} KiB"


# ---------------------------------------------------------------------------------------------
# The network as a list of conv stages


@dataclass(frozen=True)
class Norm:
    """A per-channel norm after a conv: y = γ (x − μ)/√(σ² + ε) + β.

    `mean`/`variance` None: instance norm (Ulyanov et al.) or CIN (Dumoulin et al.), μ and σ² of
    the whole image per channel; given: batch norm in eval mode, its running statistics.
    """

    eps: float
    weight: Tensor | None = None
    bias: Tensor | None = None
    mean: Tensor | None = None
    variance: Tensor | None = None

    @property
    def needs_statistics(self) -> bool:
        return self.mean is None

    def affine(self, mean: Tensor, variance: Tensor) -> tuple[Tensor, Tensor]:
        """The norm as y = scale · x + shift (per channel, float32)."""
        scale = torch.rsqrt(variance.double() + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.double()
        shift = -mean.double() * scale
        if self.bias is not None:
            shift = shift + self.bias.double()
        return scale.float(), shift.float()


@dataclass(frozen=True)
class Stage:
    """(Nearest ×`upsample`,) reflection pad `pad`, conv (or transposed conv), norm, ReLU.

    `opens_block`: this stage's input is a residual block's skip; `closes_block`: the skip is
    added after this stage's norm (Gross & Wilber's block: no ReLU after the sum).
    """

    conv: nn.Conv2d | nn.ConvTranspose2d
    pad: int = 0
    upsample: int = 1
    norm: Norm | None = None
    relu: bool = False
    opens_block: bool = False
    closes_block: bool = False

    @property
    def transposed(self) -> bool:
        return isinstance(self.conv, nn.ConvTranspose2d)

    @property
    def kernel(self) -> int:
        return self.conv.kernel_size[0]

    @property
    def stride(self) -> int:
        return self.conv.stride[0]

    def output_size(self, size: int) -> int:
        """Output length along one axis for an input of `size`."""
        if self.transposed:
            conv = self.conv
            return (
                (size - 1) * self.stride
                - 2 * conv.padding[0]
                + self.kernel
                + conv.output_padding[0]
            )
        return (size * self.upsample + 2 * self.pad - self.kernel) // self.stride + 1

    def input_span(self, size: int) -> int:
        """Input length (in the padded, upsampled grid) an output tile of `size` reads."""
        if self.transposed:
            return size // self.stride + 2
        return (size - 1) * self.stride + self.kernel

    def convolve(self, tile: Tensor) -> Tensor:
        conv = self.conv
        if self.transposed:
            return F.conv_transpose2d(tile, conv.weight, conv.bias, conv.stride, 0, 0, conv.groups)
        return F.conv2d(tile, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)


@dataclass(frozen=True)
class Network:
    """A transform network as tiled stages, and the map from its last stage to RGB [0, 1]."""

    stages: list[Stage]
    finish: Callable[[Tensor], Tensor]


def tanh_to_unit(x: Tensor) -> Tensor:
    """`TransformNet`'s output map: Johnson et al.'s scaled tanh moved to [0, 1]."""
    return (torch.tanh(x) + 1) / 2


def _unsupported(module: nn.Module) -> UserError:
    return UserError(
        f"Tiled stylisation does not know the layer {module.__class__.__name__}; it runs the "
        "nst TransformNet and ConditionalTransformNet, so give a smaller image or more max_memory."
    )


def _norm_of(module: nn.Module) -> Norm:
    if isinstance(module, nn.GroupNorm) and module.num_groups == module.num_channels:
        return Norm(module.eps, module.weight, module.bias)
    if isinstance(module, nn.BatchNorm2d):
        if module.training or module.running_mean is None:
            raise UserError("Tiled stylisation needs the network in eval mode: call .eval() first.")
        return Norm(module.eps, module.weight, module.bias, module.running_mean, module.running_var)
    raise _unsupported(module)


def _stages_of(modules: Iterator[nn.Module]) -> list[Stage]:
    """Group a flat run of modules into stages: prefix (upsample, pad), conv, norm, ReLU."""
    stages: list[Stage] = []
    prefix: dict = {}
    for module in modules:
        if isinstance(module, nn.Upsample):
            factor = module.scale_factor
            if module.mode != "nearest" or factor != int(factor):
                raise _unsupported(module)
            prefix["upsample"] = int(factor)
        elif isinstance(module, nn.ReflectionPad2d):
            if len(set(module.padding)) != 1:
                raise _unsupported(module)
            prefix["pad"] = module.padding[0]
        elif isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            plain = module.dilation == (1, 1) and len(set(module.kernel_size)) == 1
            plain = plain and len(set(module.stride)) == 1
            if isinstance(module, nn.Conv2d) and module.padding != (0, 0) or not plain:
                raise _unsupported(module)
            stages.append(Stage(module, **prefix))
            prefix = {}
        elif isinstance(module, nn.GroupNorm | nn.BatchNorm2d) and stages and not prefix:
            stages[-1] = replace(stages[-1], norm=_norm_of(module))
        elif isinstance(module, nn.ReLU) and stages and not prefix:
            stages[-1] = replace(stages[-1], relu=True)
        else:
            raise _unsupported(module)
    return stages


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    return (leaf for leaf in module.modules() if not list(leaf.children()))


def _block(stages: list[Stage]) -> list[Stage]:
    return [
        replace(stage, opens_block=index == 0, closes_block=index == len(stages) - 1)
        for index, stage in enumerate(stages)
    ]


def transform_net_stages(network: TransformNet) -> Network:
    """`TransformNet.layers` as stages (Johnson et al. layout), output tanh mapped to [0, 1]."""
    stages: list[Stage] = []
    plain: list[nn.Module] = []
    for module in network.layers:
        if isinstance(module, ResidualBlock):
            stages += _stages_of(iter(plain)) + _block(_stages_of(_leaves(module.body)))
            plain = []
        elif isinstance(module, nn.Sequential):
            plain += list(module)
        else:
            plain.append(module)
    return Network(stages + _stages_of(iter(plain)), tanh_to_unit)


def conditional_stages(network: ConditionalTransformNet, embedding: Tensor) -> Network:
    """`ConditionalTransformNet` as stages for one style embedding (1×E or E): the encoder's plain
    norms, then CIN with the γ_s, β_s the embedding sets (Ghiasi et al. §3); output a sigmoid."""
    params = iter(network.style_params(embedding.reshape(1, -1)).split(network.param_sizes, 1))

    def conditional(layer: ConditionalConvLayer) -> Stage:
        if not isinstance(layer.norm, ConditionalInstanceNorm):
            raise _unsupported(layer.norm)
        gamma, beta = next(params)[0], next(params)[0]
        norm = Norm(layer.norm.norm.eps, gamma, beta)
        return Stage(layer.conv, layer.pad.padding[0], 2 if layer.upsample else 1, norm, layer.relu)

    stages = _stages_of(module for layer in network.encoder for module in layer)
    for block in network.residual_blocks:
        if not isinstance(block, ConditionalResidualBlock):
            raise _unsupported(block)
        stages += _block([conditional(block.first), conditional(block.second)])
    stages += [conditional(layer) for layer in network.decoder]
    return Network(stages, torch.sigmoid)


# ---------------------------------------------------------------------------------------------
# Whole-image activations


class Buffer:
    """One whole-image activation, 1×C×H×W stored channels-last (N H W C), in memory or in an
    unlinked memory-mapped temporary file (`directory` given)."""

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        directory: str | None = None,
    ):
        self.row_bytes = width * channels * torch.finfo(dtype).bits // 8
        self.map: mmap.mmap | None = None
        if directory is None:
            data = torch.empty(1, height, width, channels, dtype=dtype, device=device)
        else:
            size = max(height * self.row_bytes, 1)
            with tempfile.TemporaryFile(dir=directory) as file:  # gone when the map closes
                try:
                    os.posix_fallocate(file.fileno(), 0, size)  # no SIGBUS on a full disk later
                except OSError:
                    free = shutil.disk_usage(directory).free
                    raise UserError(
                        f"Tiled stylisation needs {describe_bytes(size)} more temporary disk space "
                        f"in {directory} ({describe_bytes(free)} free); free some, set TMPDIR to a "
                        "larger disk, or stylise a smaller image."
                    ) from None
                self.map = mmap.mmap(file.fileno(), size)
            words = np.frombuffer(self.map, dtype=np.int16, count=height * self.row_bytes // 2)
            data = torch.from_numpy(words).view(dtype).reshape(1, height, width, channels)
        self.tensor = data.permute(0, 3, 1, 2)  # N C H W view of the channels-last data

    def release(self, rows: slice) -> None:
        """Hand the file pages of `rows` back to the kernel (they stay in the file)."""
        if self.map is None:
            return
        start = rows.start * self.row_bytes // mmap.PAGESIZE * mmap.PAGESIZE
        stop = min(len(self.map), -(-rows.stop * self.row_bytes // mmap.PAGESIZE) * mmap.PAGESIZE)
        if stop > start:
            self.map.madvise(mmap.MADV_DONTNEED, start, stop - start)


@dataclass
class Activation:
    """A stored activation and the per-channel affine map and ReLU still to apply to it (a norm
    whose statistics were known only after its last tile). `logical` is the size the network
    sees: larger than the stored size only for the input image, reflected up to a multiple of 4
    as `TransformNet.forward` pads it."""

    data: Tensor
    buffer: Buffer | None = None
    scale: Tensor | None = None
    shift: Tensor | None = None
    relu: bool = False
    logical: tuple[int, int] | None = None

    @property
    def channels(self) -> int:
        return self.data.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return self.logical or tuple(self.data.shape[-2:])

    def read(self, rows: slice, cols: slice, device: torch.device) -> Tensor:
        """The activation's values on a stored block, float32."""
        block = self.data[:, :, rows, cols].to(device, torch.float32)
        if self.scale is not None:
            block = torch.addcmul(self.shift[:, None, None], block, self.scale[:, None, None])
            return block.relu_() if self.relu else block
        return block.relu() if self.relu else block

    def release(self, rows: slice) -> None:
        if self.buffer is not None:
            self.buffer.release(rows)


def reflect(index: Tensor, size: int) -> Tensor:
    """Reflection padding's index map onto 0…size−1 (the edge itself is not repeated)."""
    index = torch.where(index < 0, -index, index)
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def _source_indices(stage: Stage, source: Activation, axis: int, start: int, stop: int) -> Tensor:
    """Stored indices along `axis` (0 rows, 1 cols) that output `start:stop` of `stage` reads."""
    logical, stored = source.size[axis], source.data.shape[2 + axis]
    virtual = torch.arange(start * stage.stride, (stop - 1) * stage.stride + stage.kernel)
    upsampled = reflect(virtual - stage.pad, logical * stage.upsample) // stage.upsample
    return reflect(upsampled, stored)  # the forward's pad to a multiple of 4 (input image only)


def _gather(stage: Stage, source: Activation, rows: slice, cols: slice, device) -> Tensor:
    """The input tile `stage` needs for output `rows`, `cols`, halo and padding included."""
    if stage.transposed:
        (first_row, last_row), (first_col, last_col) = (
            _transposed_span(stage, span, size)
            for span, size in ((rows, source.size[0]), (cols, source.size[1]))
        )
        return source.read(slice(first_row, last_row), slice(first_col, last_col), device)
    if source.logical is None or source.logical == tuple(source.data.shape[-2:]):
        return _gather_padded(stage, source, rows, cols, device)
    # The input image under the forward's pad to a multiple of 4: a reflection of a reflection,
    # gathered by index (3 channels, so cheap).
    row_index = _source_indices(stage, source, 0, rows.start, rows.stop)
    col_index = _source_indices(stage, source, 1, cols.start, cols.stop)
    row0, row1 = int(row_index.min()), int(row_index.max()) + 1
    col0, col1 = int(col_index.min()), int(col_index.max()) + 1
    block = source.read(slice(row0, row1), slice(col0, col1), device)
    if row1 - row0 != len(row_index) or not torch.equal(row_index, torch.arange(row0, row1)):
        block = block.index_select(2, (row_index - row0).to(device))
    if col1 - col0 != len(col_index) or not torch.equal(col_index, torch.arange(col0, col1)):
        block = block.index_select(3, (col_index - col0).to(device))
    return block.contiguous(memory_format=torch.channels_last)


def _axis_span(stage: Stage, size: int, start: int, stop: int) -> tuple[int, int, int, int]:
    """(first, last) stored index, (before, after) reflection pad for outputs `start:stop`."""
    upsampled = size * stage.upsample
    first = start * stage.stride - stage.pad
    last = (stop - 1) * stage.stride + stage.kernel - stage.pad
    inside_first, inside_last = max(first, 0), min(last, upsampled)
    return inside_first, inside_last, inside_first - first, last - inside_last


def _gather_padded(stage: Stage, source: Activation, rows: slice, cols: slice, device) -> Tensor:
    """`_gather` by slicing, nearest upsampling and reflection padding of the tile itself: a tile
    at the border holds that border's rows, so padding it reflects as padding the image does."""
    (top, bottom, pad_top, pad_bottom), (left, right, pad_left, pad_right) = (
        _axis_span(stage, size, span.start, span.stop)
        for size, span in zip(source.size, (rows, cols), strict=True)
    )
    factor = stage.upsample
    block = source.read(
        slice(top // factor, -(-bottom // factor)),
        slice(left // factor, -(-right // factor)),
        device,
    )
    if factor > 1:
        block = F.interpolate(block, scale_factor=factor, mode="nearest")
        row0, col0 = top % factor, left % factor
        block = block[:, :, row0 : row0 + bottom - top, col0 : col0 + right - left]
    if pad_top or pad_bottom or pad_left or pad_right:
        block = F.pad(block, (pad_left, pad_right, pad_top, pad_bottom), mode="reflect")
    return block.contiguous(memory_format=torch.channels_last)


def _source_rows(stage: Stage, source: Activation, rows: slice) -> slice:
    """The stored rows of `source` that output `rows` of `stage` read."""
    if stage.transposed:
        return slice(*_transposed_span(stage, rows, source.size[0]))
    index = _source_indices(stage, source, 0, rows.start, rows.stop)
    return slice(int(index.min()), int(index.max()) + 1)


def _transposed_span(stage: Stage, span: slice, size: int) -> tuple[int, int]:
    """Inputs i of a transposed conv (o = i·s − p + k, 0 ≤ k < K) that reach outputs `span`."""
    stride, padding = stage.stride, stage.conv.padding[0]
    first = max(0, -(-(span.start + padding - stage.kernel + 1) // stride))
    last = min(size, (span.stop - 1 + padding) // stride + 1)
    return first, max(last, first + 1)


def _convolve(stage: Stage, tile: Tensor, rows: slice, cols: slice, source: Activation) -> Tensor:
    output = stage.convolve(tile)
    if not stage.transposed:
        return output
    # The tile's output starts at i_first·s − p; crop to the span, bias only where no input lands.
    padding, stride = stage.conv.padding[0], stage.stride
    (first_row, _), (first_col, _) = (
        _transposed_span(stage, span, size)
        for span, size in ((rows, source.size[0]), (cols, source.size[1]))
    )
    top, left = (
        rows.start - (first_row * stride - padding),
        cols.start - (first_col * stride - padding),
    )
    height, width = rows.stop - rows.start, cols.stop - cols.start
    bias = stage.conv.bias if stage.conv.bias is not None else output.new_zeros(output.shape[1])
    result = bias[None, :, None, None].expand(1, -1, height, width).clone()
    crop = output[:, :, max(top, 0) : top + height, max(left, 0) : left + width]
    result[
        :,
        :,
        max(-top, 0) : max(-top, 0) + crop.shape[2],
        max(-left, 0) : max(-left, 0) + crop.shape[3],
    ] = crop
    return result


class RunningMoments:
    """Per-channel mean and variance over tiles: Chan et al.'s pairwise combination of each
    tile's (count, mean, M2), in float64, so the whole-image μ, σ² do not depend on the tiling."""

    def __init__(self, channels: int):
        self.count = 0
        self.mean = torch.zeros(channels, dtype=torch.float64)
        self.m2 = torch.zeros(channels, dtype=torch.float64)

    def add(self, tile: Tensor) -> None:
        variance, mean = torch.var_mean(tile, dim=(0, 2, 3), correction=0)
        count = tile.shape[0] * tile.shape[2] * tile.shape[3]
        mean, m2 = mean.double().cpu(), variance.double().cpu() * count
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * (count / total)
        self.m2 += m2 + delta.square() * (self.count * count / total)
        self.count = total

    @property
    def variance(self) -> Tensor:
        return self.m2 / self.count


# ---------------------------------------------------------------------------------------------
# Planning: storage and tile size from the memory budget


@dataclass(frozen=True)
class Shape:
    """One stage's input and output: channels, height, width."""

    in_channels: int
    in_height: int
    in_width: int
    out_channels: int
    out_height: int
    out_width: int


def stage_shapes(stages: list[Stage], height: int, width: int) -> list[Shape]:
    """Each stage's input and output shape for an image of `height` × `width`."""
    size = (height + -height % MULTIPLE, width + -width % MULTIPLE)
    shapes, channels = [], 3
    for stage in stages:
        out = tuple(stage.output_size(length) for length in size)
        shapes.append(Shape(channels, *size, stage.conv.out_channels, *out))
        channels, size = stage.conv.out_channels, out
    return shapes


@dataclass(frozen=True)
class TilePlan:
    """Where activations live (`storage`), the output tile side, and the bytes both take."""

    storage: str
    tile: int
    buffer_bytes: int
    work_bytes: int

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.storage.endswith("float32") else torch.float16


def _buffer_bytes(stages: list[Stage], shapes: list[Shape], itemsize: int, output: int) -> int:
    """The most whole-image activation bytes alive at once (input of a stage, its output, a
    residual skip, the final output), the input image not counted."""
    peak, skip = 0, 0
    for index, (stage, shape) in enumerate(zip(stages, shapes, strict=True)):
        source = 0 if index == 0 else shape.in_channels * shape.in_height * shape.in_width
        made = shape.out_channels * shape.out_height * shape.out_width
        if stage.opens_block:
            skip = source
        held = skip if (stage.closes_block and index > 0) else 0
        last = index == len(stages) - 1
        stored = 0 if last and stage.norm is None else made
        peak = max(peak, (source + stored + held) * itemsize + (output if last else 0))
    return peak


def _work_bytes(stages: list[Stage], shapes: list[Shape], tile: int, band_itemsize: int) -> int:
    """Bytes one tile of the hungriest stage takes: its float32 input with halo (read, mapped,
    gathered), its output (conv, statistics, stored copy), and with a disk storage the band of
    rows mapped in for it (`band_itemsize` 0 in memory)."""
    worst = 0
    for stage, shape in zip(stages, shapes, strict=True):
        span = stage.input_span(tile)
        tile_in = shape.in_channels * span * span
        tile_out = shape.out_channels * tile * tile
        band = band_itemsize * (
            shape.in_channels * min(span, shape.in_height * stage.upsample) * shape.in_width
            + shape.out_channels * tile * shape.out_width
        )
        worst = max(worst, 4 * 3 * (tile_in + tile_out) + band)
    return worst


def plan_tiles(
    stages: list[Stage], height: int, width: int, max_memory: int, storage: str | None = None
) -> TilePlan:
    """The fastest plan within `max_memory` bytes: float32 in memory, else float16 in memory,
    else float16 on disk (or only `storage`), with the largest tile that fits beside it."""
    if storage is not None and storage not in STORAGES:
        raise UserError(f"Unknown tile storage '{storage}'; use {', '.join(STORAGES)}.")
    shapes = stage_shapes(stages, height, width)
    output = 4 * 3 * height * width
    candidates = [storage] if storage else list(AUTOMATIC_STORAGES)
    plans = []
    for name in candidates:
        itemsize = 4 if name.endswith("float32") else 2
        on_disk = name.startswith("disk")
        buffers = output if on_disk else _buffer_bytes(stages, shapes, itemsize, output)
        band_itemsize = itemsize if on_disk else 0
        tile = LARGEST_TILE
        while (
            tile > SMALLEST_TILE
            and buffers + _work_bytes(stages, shapes, tile, band_itemsize) > max_memory
        ):
            tile = tile * 3 // 4
        tile = max(tile, SMALLEST_TILE)
        work = _work_bytes(stages, shapes, tile, band_itemsize)
        plans.append(TilePlan(name, tile, buffers, work))
    fitting = [plan for plan in plans if plan.buffer_bytes + plan.work_bytes <= max_memory]
    good = [plan for plan in fitting if plan.tile >= GOOD_TILE]
    if good or fitting:
        return (good or fitting)[0]
    smallest = min(plans, key=lambda plan: plan.buffer_bytes + plan.work_bytes)
    raise UserError(
        f"max_memory={describe_bytes(max_memory)} is too small for even one "
        f"{SMALLEST_TILE}×{SMALLEST_TILE} tile of a {width}×{height} image; give at least "
        f"max_memory={describe_bytes(smallest.buffer_bytes + smallest.work_bytes)}."
    )


def untiled_bytes(stages: list[Stage], height: int, width: int, batch: int = 1) -> int:
    """An estimate of the untiled forward's peak activation bytes: at each stage its float32
    input, the padded copy, the conv output and the norm output."""
    worst = 0
    for stage, shape in zip(stage_shapes(stages, height, width), stages, strict=True):
        source = stage.in_channels * stage.in_height * stage.in_width
        padded = (
            stage.in_channels
            * (stage.in_height * shape.upsample + 2 * shape.pad)
            * (stage.in_width * shape.upsample + 2 * shape.pad)
        )
        worst = max(
            worst, source + padded + 2 * stage.out_channels * stage.out_height * stage.out_width
        )
    return 4 * batch * worst


# ---------------------------------------------------------------------------------------------
# Running


def _tiles(height: int, width: int, tile: int) -> list[list[tuple[slice, slice]]]:
    """Bands of tiles covering height × width, top to bottom."""
    return [
        [
            (slice(top, min(top + tile, height)), slice(left, min(left + tile, width)))
            for left in range(0, width, tile)
        ]
        for top in range(0, height, tile)
    ]


def network_stages(network: nn.Module, embedding: Tensor | None = None) -> Network:
    """The stages of a `TransformNet`, or of a `ConditionalTransformNet` for one embedding."""
    if isinstance(network, ConditionalTransformNet):
        if embedding is None:
            raise UserError("A ConditionalTransformNet needs a style embedding to stylise.")
        return conditional_stages(network, embedding)
    if isinstance(network, TransformNet):
        return transform_net_stages(network)
    raise _unsupported(network)


@torch.no_grad()
def tiled_forward(
    network: nn.Module,
    image: Tensor,
    embedding: Tensor | None = None,
    *,
    max_memory: int | str | None = DEFAULT_MAX_MEMORY,
    storage: str | None = None,
    tile: int | None = None,
    progress: ProgressCallback | None = None,
    temporary_directory: str | None = None,
) -> Tensor:
    """`network(image[, embedding])` computed layer by layer over tiles, exactly (see the module
    docstring), with the network's activations within `max_memory` bytes (the input image, the
    interpreter and the weights not counted). `storage` (float32, float16, disk) and `tile`
    (output tile side) override the plan; `progress(done, total)` is called after each tile;
    disk storage goes to `temporary_directory` (default: the system's, `TMPDIR`)."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise UserError(f"Expected an N×3×H×W image batch, got shape {tuple(image.shape)}.")
    budget = parse_memory(max_memory) or DEFAULT_MAX_MEMORY
    batch, _, height, width = image.shape
    if embedding is not None and len(embedding) == 1:
        embedding = embedding.expand(batch, -1)
    plans = [
        network_stages(network, None if embedding is None else embedding[index])
        for index in range(batch)
    ]
    plan = plan_tiles(plans[0].stages, height, width, budget, storage)
    if tile is not None:
        plan = replace(plan, tile=int(tile))
    directory = (
        (temporary_directory or tempfile.gettempdir()) if plan.storage.startswith("disk") else None
    )
    output = torch.empty_like(image, dtype=torch.float32)
    counter = _Progress(progress, batch * _tile_count(plans[0].stages, height, width, plan.tile))
    for index in range(batch):
        _run(
            plans[index],
            image[index : index + 1],
            output[index : index + 1],
            plan,
            directory,
            counter,
        )
    return output


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback, self.done, self.total = callback, 0, total

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _tile_count(stages: list[Stage], height: int, width: int, tile: int) -> int:
    count = 0
    shapes = stage_shapes(stages, height, width)
    for stage, shape in zip(stages, shapes, strict=True):
        direct = stage is stages[-1] and stage.norm is None
        out_height, out_width = (height, width) if direct else (shape.out_height, shape.out_width)
        count += sum(map(len, _tiles(out_height, out_width, tile)))
        if stage.closes_block:
            count += sum(map(len, _tiles(shape.out_height, shape.out_width, tile)))
    if stages[-1].norm is not None:
        count += sum(map(len, _tiles(height, width, tile)))
    return count


def _run(
    network: Network,
    image: Tensor,
    output: Tensor,
    plan: TilePlan,
    directory: str | None,
    progress: _Progress,
) -> None:
    """One image through the stages; `output` (1×3×H×W) receives the stylised image."""
    device = image.device
    height, width = image.shape[-2:]
    padded = (height + -height % MULTIPLE, width + -width % MULTIPLE)
    source = Activation(image, logical=padded)
    skip: Activation | None = None
    for stage in network.stages:
        if stage.opens_block:
            skip = source
        out_height, out_width = (stage.output_size(length) for length in source.size)
        if stage is network.stages[-1] and stage.norm is None:  # straight into the output
            for band in _tiles(height, width, plan.tile):
                for rows, cols in band:
                    tile = _gather(stage, source, rows, cols, device)
                    made = _convolve(stage, tile, rows, cols, source)
                    output[:, :, rows, cols] = network.finish(made)
                    progress.step()
            return
        buffer = Buffer(
            stage.conv.out_channels, out_height, out_width, plan.dtype, device, directory
        )
        moments = RunningMoments(stage.conv.out_channels) if stage.norm else None
        centre: tuple[Tensor, Tensor] | None = None
        for band in _tiles(out_height, out_width, plan.tile):
            for rows, cols in band:
                made = _convolve(
                    stage, _gather(stage, source, rows, cols, device), rows, cols, source
                )
                if moments is not None and stage.norm.needs_statistics:
                    moments.add(made)
                if plan.dtype != torch.float32:
                    centre = centre or _centre(made)
                    made = (made - centre[0][:, None, None]) / centre[1][:, None, None]
                buffer.tensor[:, :, rows, cols] = made
                progress.step()
            buffer.release(band[0][0])
            source.release(_source_rows(stage, source, band[0][0]))
        scale = shift = None
        if stage.norm is not None:
            statistics = (
                (moments.mean, moments.variance)
                if stage.norm.needs_statistics
                else (stage.norm.mean, stage.norm.variance)
            )
            scale, shift = (value.to(device) for value in stage.norm.affine(*statistics))
        if centre is not None:  # undo the storage's centring: x = offset + spread · stored
            offset, spread = centre
            scale, shift = (
                (spread, offset) if scale is None else (scale * spread, shift + scale * offset)
            )
        made = Activation(buffer.tensor, buffer, scale, shift, stage.relu)
        if stage.closes_block:
            _add_in_place(skip, made, plan.tile, device, progress)
            made = Activation(skip.data, skip.buffer)
        source = made
    for band in _tiles(height, width, plan.tile):  # a final norm: its statistics are whole now
        for rows, cols in band:
            output[:, :, rows, cols] = network.finish(source.read(rows, cols, device))
            progress.step()


def _centre(tile: Tensor) -> tuple[Tensor, Tensor]:
    """A per-channel offset and spread (the first tile's mean and standard deviation) that a
    16-bit storage subtracts and divides by: a conv output with a large mean against its spread
    would otherwise lose its digits to the rounding before its norm subtracts the mean."""
    spread, offset = torch.std_mean(tile, dim=(0, 2, 3), correction=0)
    floor = 1e-3 * offset.abs() + 1e-6
    return offset, torch.maximum(spread, floor)


def _add_in_place(
    skip: Activation, body: Activation, tile: int, device, progress: _Progress
) -> None:
    """skip ← skip + body, tile by tile over skip's own storage (the residual block's sum)."""
    height, width = skip.data.shape[-2:]
    for band in _tiles(height, width, tile):
        for rows, cols in band:
            total = skip.read(rows, cols, device) + body.read(rows, cols, device)
            skip.data[:, :, rows, cols] = total
            progress.step()
        skip.release(band[0][0])
        body.release(band[0][0])


@torch.no_grad()
def progress_bar(description: str = "Stylizing tiles") -> ProgressCallback:
    """A `progress` callback drawing a tqdm bar, opened at the first tile and closed at the last."""
    from tqdm.auto import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="tile", leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            bar = None

    return update


def forward_within_memory(
    network: nn.Module,
    image: Tensor,
    embedding: Tensor | None = None,
    *,
    max_memory: int | str | None = DEFAULT_MAX_MEMORY,
    progress: ProgressCallback | None = None,
    whole: Callable[..., Tensor] | None = None,
) -> Tensor:
    """`network(image[, embedding])`, untiled when its activations fit `max_memory` (run by
    `whole` if given, e.g. another backend), else `tiled_forward` (the same output to float
    rounding, see the module docstring)."""
    budget = parse_memory(max_memory) or DEFAULT_MAX_MEMORY
    height, width = image.shape[-2:]
    first = network_stages(network, None if embedding is None else embedding[:1])
    if untiled_bytes(first.stages, height, width, len(image)) <= budget:
        run = whole or network
        return run(image) if embedding is None else run(image, embedding)
    return tiled_forward(network, image, embedding, max_memory=budget, progress=progress)
