"""Video flicker: how much a trained network's output changes between consecutive frames.

    python benchmarks/video_flicker.py PLAIN.ckpt [STABLE.ckpt]
        [--video ../shared/assets/video/fox.mp4] [--size 360] [--frames 150] [--eval-frames 4]
        [--style IMAGE] [--device auto]

Flicker ratio = mean |S(x_t) − S(x_{t−1})| / mean |x_t − x_{t−1}| over consecutive frames (long
side `--size`, the first `--frames` frames, stylised in float before any encoding): 1 means the
output changes as much as the video, more means the style flickers. The style distance of
`nst.evaluate.StyleEvaluator` (Caffe VGG19) on `--eval-frames` evenly spaced frames shows what
the stylisation costs. With two checkpoints (without and with the stability loss) it prints the
relative flicker reduction of the second; compare them at about equal style distance.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from nst.evaluate import StyleEvaluator
from nst.image import load_image
from nst.inference import batch_stylizer, load_stylizer
from nst.methods.common import torch_device
from nst.video import open_video, output_size, rgb, to_images

VIDEO = "../shared/assets/video/fox.mp4"


def read_frames(path: str, size: int | None, count: int) -> np.ndarray:
    """The first `count` frames as uint8 N×H×W×3, long side `size` (even sides)."""
    with open_video(Path(path)) as container:
        video = container.streams.video[0]
        width, height = output_size(video.width, video.height, size)
        frames = []
        for frame in container.decode(video):
            frames.append(rgb(frame, width, height))
            if len(frames) == count:
                break
    return np.stack(frames)


def flicker(frames: torch.Tensor) -> float:
    """Mean absolute difference between consecutive frames of an N×3×H×W batch."""
    return (frames[1:] - frames[:-1]).abs().mean().item()


def stylise_all(checkpoint: str, source: torch.Tensor, device: torch.device) -> tuple:
    """The stylised frames (CPU float) and the checkpoint's hyperparameters."""
    network = load_stylizer(checkpoint)
    hparams = network.hparams
    stylize = batch_stylizer(network, device)
    batches = [stylize(batch.to(device)).cpu() for batch in source.split(8)]
    return torch.cat(batches), hparams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="one or two fast-method checkpoints")
    parser.add_argument("--video", default=VIDEO)
    parser.add_argument("--size", type=int, default=360)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--eval-frames", type=int, default=4)
    parser.add_argument("--style", help="style image for the evaluator (default: the checkpoint's)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = torch_device(args.device)
    source = to_images(read_frames(args.video, args.size, args.frames), torch.device("cpu"))
    source_flicker = flicker(source)
    evaluator = StyleEvaluator(device=device)
    picks = np.linspace(0, len(source) - 1, args.eval_frames).round().astype(int).tolist()
    print(
        f"{args.video}: {len(source)} frames at {source.shape[-1]}×{source.shape[-2]}, "
        f"source mean |Δ| between frames {source_flicker:.4f}"
    )
    print(f"{'checkpoint':<60} {'stability':>9} {'flicker':>8} {'style':>7} {'content':>7}")
    ratios = []
    for checkpoint in args.checkpoints:
        stylised, hparams = stylise_all(checkpoint, source, device)
        style = load_image(args.style or hparams["style"]["image"])
        scores = [evaluator(stylised[i : i + 1], source[i : i + 1], style) for i in picks]
        ratio = flicker(stylised) / source_flicker
        ratios.append(ratio)
        print(
            f"{checkpoint[-60:]:<60} {hparams.get('stability_weight', 0):>9g} {ratio:>8.3f} "
            f"{np.mean([s['style'] for s in scores]):>7.4f} "
            f"{np.mean([s['content'] for s in scores]):>7.4f}"
        )
    if len(ratios) == 2:
        print(f"flicker reduction of the second: {1 - ratios[1] / ratios[0]:.1%}")


if __name__ == "__main__":
    main()
