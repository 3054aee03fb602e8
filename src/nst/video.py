"""Stylise a video: decode with PyAV, stylise batches of frames, encode H.264, keep the audio.

Three threads overlap the work, so the network never waits for the codecs:

    decode (thread) ──uint8 batches──► stylise (caller's thread, GPU or CPU) ──► encode (thread)

Audio packets travel through the same queues in source order and are copied into the output
unchanged (or transcoded to AAC when the output container cannot hold the source's codec). The
output is written to a hidden temporary file beside the final one and renamed into place at the
end; an error or Ctrl-C removes it.

A method plugs in through a `Stylizer`: any callable that maps an N×3×H×W float batch in [0, 1]
on the device to a stylised batch of the same shape there. `nst.inference.batch_stylizer` makes
one from a fast-method network. The arbitrary method needs only a callable that closes over its
style embedding (compute the embedding once, then `lambda images: network(images, embedding)`)
and passes it to `stylize_video`; nothing else here changes.
"""

import contextlib
import io
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from nst.errors import UserError
from nst.networks import MIN_SIDE
from nst.outputs import IMAGE_SUFFIXES, VIDEO_OUTPUT_SUFFIXES, atomic_file, check_output

Stylizer = Callable[[Tensor], Tensor]

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv"}
IMAGE_CONTAINERS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"}
DEPTH = 2  # batches in flight between the threads


@dataclass
class Frames:
    """A batch of decoded frames: uint8 N×H×W×3 RGB and each frame's timestamp."""

    pixels: np.ndarray
    timestamps: list[int]


def is_video(path: str | os.PathLike) -> bool:
    """Whether `path` is a video: by extension, or for unknown extensions by probing the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES or not path.is_file():
        return False
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video) and container.format.name not in IMAGE_CONTAINERS
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return False


def check_video_output(output: Path, input_path: Path, overwrite: bool) -> None:
    """Refuse an output that is not an H.264 container, overwrites the input, or exists."""
    if output.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
        raise UserError(f"Cannot write '{output.name}': use a .mp4, .mkv or .mov output for video.")
    check_output(output, overwrite, [input_path])


def open_video(path: Path) -> av.container.InputContainer:
    """Open a video file for decoding, or raise a one-sentence `UserError`."""
    if not path.is_file():
        raise UserError(f"Video not found: {path}; check the path.")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        reason = "it is empty" if path.stat().st_size == 0 else reason_of(error)
        raise UserError(
            f"Cannot read {path} as a video ({reason}); use an MP4, MOV, MKV, AVI or WebM file."
        ) from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path} has no video stream; use a file with video in it.")
    return container


def reason_of(error: Exception) -> str:
    """FFmpeg's short description of an error, without the file name PyAV appends."""
    return str(getattr(error, "strerror", None) or error).rstrip(".")


def output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """Width and height of the stylised frames: long side `size` if given, both even.

    H.264 in yuv420p stores colour at half resolution, so odd sizes lose their last column/row.
    """
    if size is not None:
        if size <= 0:
            raise UserError(f"Image size must be positive, got {size}.")
        scale = size / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    return width - width % 2, height - height % 2


def decode(
    container, video, audio, width: int, height: int, batch_size: int, turns: int = 0
) -> Iterator:
    """Yield `Frames` batches of the video stream at width×height and the audio packets, in order.

    Frames of another size (or an odd source size, cropped) are scaled by FFmpeg's swscale in
    the same pass that converts YUV to RGB. Timestamps missing from the source are filled in.
    """
    step = round(1 / (video.average_rate * video.time_base)) if video.average_rate else 1
    pixels, timestamps, last = [], [], None
    streams = [video, audio] if audio is not None else [video]
    try:
        for packet in container.demux(streams):
            if packet.stream.type == "audio":
                if packet.dts is not None:
                    yield packet
                continue
            for frame in packet.decode():
                timestamp = frame.pts if frame.pts is not None else (last or 0) + step
                timestamp = timestamp if last is None or timestamp > last else last + 1
                last = timestamp
                pixels.append(rgb(frame, width, height, turns))
                timestamps.append(timestamp)
                if len(pixels) == batch_size:
                    yield Frames(np.stack(pixels), timestamps)
                    pixels, timestamps = [], []
    except av.FFmpegError as error:
        raise UserError(
            f"Cannot decode {container.name} ({reason_of(error)}); the file is damaged or uses "
            "a codec this FFmpeg lacks."
        ) from None
    if pixels:
        yield Frames(np.stack(pixels), timestamps)


def rgb(frame: av.VideoFrame, width: int, height: int, turns: int = 0) -> np.ndarray:
    """A decoded frame as uint8 H×W×3 RGB at width×height (cropped by a pixel if odd), upright:
    turned `turns` quarter turns counter-clockwise (`quarter_turns`), then width×height."""
    stored_width, stored_height = (height, width) if turns % 2 else (width, height)
    if (frame.width - frame.width % 2, frame.height - frame.height % 2) == (
        stored_width,
        stored_height,
    ):
        pixels = frame.to_ndarray(format="rgb24")[:stored_height, :stored_width]
    else:
        pixels = frame.reformat(stored_width, stored_height, "rgb24", interpolation="AREA")
        pixels = pixels.to_ndarray()
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def quarter_turns(path: Path) -> int:
    """Quarter turns counter-clockwise that make the decoded frames upright: the rotation of the
    first frame's display matrix (a phone's portrait video says 90 or 270), 0 without one."""
    with open_video(path) as container:
        try:
            for frame in container.decode(video=0):
                return round(frame.rotation / 90) % 4
        except av.FFmpegError:
            return 0  # the stylising pass reports the damage in its own sentence
    return 0


def to_images(pixels: np.ndarray, device: torch.device) -> Tensor:
    """uint8 N×H×W×3 → float N×3×H×W in [0, 1] on `device` (channels-last in memory)."""
    batch = torch.from_numpy(pixels).to(device, non_blocking=True)
    return batch.permute(0, 3, 1, 2).float().div_(255)


def to_pixels(images: Tensor) -> np.ndarray:
    """float N×3×H×W in [0, 1] → uint8 N×H×W×3 on the CPU (converted on the device first)."""
    pixels = images.clamp(0, 1).mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1)
    return pixels.cpu().numpy()


def holds(format_name: str, stream) -> bool:
    """Whether the muxer `format_name` accepts a copy of `stream`: a trial header in memory.

    (`OutputContainer.supported_codecs` is not enough: it lists opus for .mov, whose muxer
    refuses it.)
    """
    trial = av.open(io.BytesIO(), "w", format=format_name)
    try:
        trial.add_stream_from_template(stream)
        trial.start_encoding()
        return True
    except av.FFmpegError:
        return False
    finally:
        with contextlib.suppress(av.FFmpegError):
            trial.close()


class VideoWriter:
    """An output container with an H.264 stream and, if the source has audio, an audio stream."""

    def __init__(
        self, path: Path, source_video, source_audio, width: int, height: int, crf: int, preset: str
    ):
        self.container = av.open(str(path), "w")
        rate = source_video.average_rate or source_video.guessed_rate or Fraction(25)
        self.video = self.container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.codec_context.time_base = source_video.time_base  # keep source timestamps
        self.video.options = {"crf": str(crf), "preset": preset}
        self.video.thread_type = "AUTO"
        self.time_base = source_video.time_base
        self.audio, self.audio_copied = None, False
        if source_audio is not None:
            self.audio_copied = holds(self.container.format.name, source_audio)
            if self.audio_copied:
                self.audio = self.container.add_stream_from_template(source_audio)
            else:
                self.audio = self.container.add_stream("aac", rate=source_audio.rate)

    def write(self, item) -> None:
        """Encode a `Frames` batch, or copy (or transcode) one audio packet, into the output."""
        if isinstance(item, Frames):
            for pixels, timestamp in zip(item.pixels, item.timestamps, strict=True):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts, frame.time_base = timestamp, self.time_base
                self.container.mux(self.video.encode(frame))
        elif self.audio_copied:
            item.stream = self.audio
            self.container.mux(item)
        else:
            for frame in item.decode():
                self.container.mux(self.audio.encode(frame))

    def close(self, flush: bool) -> None:
        """Flush the encoders (if `flush`) and close the file."""
        try:
            if flush:
                self.container.mux(self.video.encode(None))
                if self.audio is not None and not self.audio_copied:
                    self.container.mux(self.audio.encode(None))
        finally:
            self.container.close()


class Failure:
    """An exception raised in a background thread, carried to the caller's thread."""

    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterator, depth: int = DEPTH) -> Iterator:
    """Yield `items`, produced up to `depth` ahead by a background thread; its errors re-raise."""
    buffer, stop, done = queue.Queue(maxsize=depth), threading.Event(), object()

    def put(item) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                return buffer.put(item, timeout=0.1)

    def produce() -> None:
        try:
            for item in items:
                put(item)
                if stop.is_set():
                    return
            put(done)
        except BaseException as error:
            put(Failure(error))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundWriter:
    """Runs `write(item)` for each `put` item on a background thread; its errors re-raise."""

    def __init__(self, write: Callable, depth: int = DEPTH):
        self.buffer, self.stop, self.failure = queue.Queue(maxsize=depth), threading.Event(), None
        self.write = write
        self.thread = threading.Thread(target=self.consume, daemon=True)
        self.thread.start()

    def consume(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Empty):
                item = self.buffer.get(timeout=0.1)
                if item is None:
                    return
                try:
                    self.write(item)
                except BaseException as error:
                    self.failure = Failure(error)
                    return

    def put(self, item) -> None:
        """Queue `item` (None ends the stream); raises the writer thread's error, if any."""
        while self.failure is None and self.thread.is_alive():
            with contextlib.suppress(queue.Full):
                return self.buffer.put(item, timeout=0.1)
        self.raise_failure()

    def finish(self) -> None:
        """Wait for every queued item to be written."""
        self.put(None)
        self.thread.join()
        self.raise_failure()

    def abort(self) -> None:
        """Stop writing (after the item in progress)."""
        self.stop.set()
        self.thread.join()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure.error


@dataclass
class VideoReport:
    """What `stylize_video` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    rate: Fraction
    seconds: float
    notes: list[str]

    def __str__(self) -> str:
        speed = self.frames / max(self.seconds, 1e-9)
        return (
            f"Wrote {self.path} ({self.frames} frames, {self.width}×{self.height}, "
            f"{float(self.rate):.5g} fps) in {self.seconds:.1f} s ({speed:.1f} frames/s)"
        )


def stylize_video(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    stylize: Stylizer,
    device: torch.device,
    batch_size: int = 8,
    size: int | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    progress: bool = True,
    overwrite: bool = True,
) -> VideoReport:
    """Stylise every frame of a video with `stylize` and write an H.264 video with its audio.

    The output has the source's frame rate and timestamps and its size (or long side `size`),
    rounded down to even sides for yuv420p; the first audio stream is copied. Nothing is left
    under `output` unless the whole video was written.
    """
    input_path, output = Path(input_path), Path(output)
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}.")
    turns = quarter_turns(input_path)
    with open_video(input_path) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[0] if container.streams.audio else None
        upright = (video.height, video.width) if turns % 2 else (video.width, video.height)
        width, height = output_size(*upright, size)
        if min(width, height) < MIN_SIDE:
            raise UserError(
                f"{input_path} is {width}×{height} px; the network needs at least {MIN_SIDE} px."
            )
        notes = [f"turned upright by its display rotation ({turns * 90}°)"] if turns else []
        if size is None and (width, height) != upright:
            notes.append(
                f"cropped {upright[0]}×{upright[1]} to {width}×{height} (H.264 "
                "yuv420p needs even sides)"
            )
        start, frames, finished = time.perf_counter(), 0, False
        with atomic_file(output, overwrite) as temporary:
            writer = VideoWriter(temporary, video, audio, width, height, crf, preset)
            if audio is not None:
                notes.append(
                    "audio copied"
                    if writer.audio_copied
                    else f"audio transcoded to AAC ({output.suffix} cannot hold "
                    f"{audio.codec_context.name})"
                )
            background = BackgroundWriter(writer.write)
            bar = tqdm(
                total=video.frames or None,
                unit="frame",
                disable=not progress,
                desc=input_path.name,
                dynamic_ncols=True,
            )
            try:
                items = prefetch(decode(container, video, audio, width, height, batch_size, turns))
                with contextlib.closing(items), bar:
                    for item in items:
                        if isinstance(item, Frames):
                            stylised = stylize(to_images(item.pixels, device))
                            item = Frames(to_pixels(stylised), item.timestamps)
                            frames += len(item.timestamps)
                            bar.update(len(item.timestamps))
                        background.put(item)
                    background.finish()
                    finished = True
            finally:
                background.abort()
                writer.close(flush=finished and frames > 0)
            if frames == 0:
                raise UserError(f"{input_path} holds no decodable video frames; use another file.")
    rate = video.average_rate or Fraction(25)
    report = VideoReport(output, frames, width, height, rate, time.perf_counter() - start, notes)
    return report
