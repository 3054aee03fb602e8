"""Video speed: end-to-end frames/s of decode + stylise + encode, as `stylize.py ckpt= input=VIDEO`.

    python benchmarks/video_speed.py [--sizes 1920x1080] [--frames 300] [--checkpoint CKPT|NAME]
        [--precision bf16] [--batch-size 8] [--preset veryfast] [--device auto]
        [--backend torch|onnxruntime]
    python benchmarks/video_speed.py --sizes 640x360 --frames 20 --device cpu      (CPU, small)

For each size a synthetic H.264 clip with an AAC track (moving gradients plus noise, so the
encoder has detail to code) is written to a temporary folder, then stylised with
`nst.video.stylize_video`: once with the identity instead of a network (the codec pipeline
alone: its ceiling) and once with the network (a random `TransformNet`, or `--checkpoint`).
Wall-clock time includes opening the file and flushing the encoder; a short warm-up run first
takes cuDNN's autotuning out of the timing.
"""

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from nst.inference import batch_stylizer, load_stylizer
from nst.methods.common import torch_device
from nst.networks import TransformNet
from nst.video import stylize_video


def write_clip(path: Path, width: int, height: int, frames: int, rate=Fraction(30)) -> Path:
    """A synthetic H.264 clip with a 440 Hz AAC tone."""
    generator = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="mono")
        y, x = np.mgrid[0:height, 0:width]
        for index in range(frames):
            base = np.stack([(x + 4 * index) % 256, (y + 2 * index) % 256, (x + y) % 256], -1)
            noisy = base + generator.integers(0, 24, size=base.shape)
            frame = av.VideoFrame.from_ndarray(noisy.clip(0, 255).astype(np.uint8), "rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        tone = np.sin(2 * np.pi * 440 * np.arange(int(48000 * frames / rate)) / 48000) * 0.3
        for start in range(0, len(tone), 1024):
            chunk = tone[start : start + 1024].astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def frames_per_second(clip: Path, stylize, device, args) -> float:
    """Frames/s of one `stylize_video` run of `clip` (wall clock, GPU synchronised)."""
    output = clip.with_name(f"out_{time.monotonic_ns()}.mp4")
    start = time.perf_counter()
    report = stylize_video(
        clip, output, stylize, device, args.batch_size, preset=args.preset, progress=False
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    output.unlink()
    return report.frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1920x1080"])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--checkpoint")
    parser.add_argument("--precision", help="fp32 | bf16 | fp16 (default: bf16 on CUDA, else fp32)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--backend", default="torch", help="with --checkpoint: torch | onnxruntime")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch_device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    if args.checkpoint:
        network = load_stylizer(args.checkpoint, backend=args.backend)
    else:
        network = TransformNet().eval()
    stylize = batch_stylizer(network, device, precision)
    print(f"device {device}, precision {precision}, batch {args.batch_size}, x264 {args.preset}")
    print(f"{'size':>10} {'frames':>6} {'codecs only':>12} {'end to end':>11}  frames/s")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            width, height = (int(side) for side in size.split("x"))
            clip = write_clip(Path(folder) / f"clip_{size}.mp4", width, height, args.frames)
            warm_up = write_clip(Path(folder) / "warm_up.mp4", width, height, args.batch_size * 2)
            frames_per_second(warm_up, stylize, device, args)
            codecs = frames_per_second(clip, lambda images: images, device, args)
            full = frames_per_second(clip, stylize, device, args)
            print(f"{size:>10} {args.frames:>6} {codecs:>12.1f} {full:>11.1f}")


if __name__ == "__main__":
    main()
