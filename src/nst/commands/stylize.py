"""Stylise an image from the command line.

    python stylize.py method=basic input=photo.jpg style=painting.jpg [output=out.png] [size=512]
        [device=auto|cpu|cuda|mps] [preserve_color=none|luminance|histogram] [method.iterations=N]
    python stylize.py input=photo.jpg style=[a.jpg,b.jpg] style_weights=[0.3,0.7]
    python stylize.py method=improved input=photo.jpg style=painting.jpg size=1024 method.scales=3
    python stylize.py model=wave input=photo.jpg|FOLDER|clip.mp4   (zoo models: model=list)
    python stylize.py ckpt=last.ckpt input=photo.jpg|FOLDER [output=PATH] [size=N] [device=…]
        [batch_size=8] [precision=auto|fp32|bf16|fp16] [strength=0.0…1.0] [preserve_color=luminance]
    python stylize.py ckpt=last.ckpt input=clip.mp4 [output=out.mp4] [size=N] [batch_size=8]
        [video.crf=18] [video.preset=veryfast]
    python stylize.py ckpt=last.ckpt|model=wave export=onnx|torchscript [output=PATH]
    python stylize.py ckpt=ARB.ckpt input=photo.jpg|FOLDER style=painting.jpg [strength=0.0…1.0]
    python stylize.py ckpt=ARB.ckpt input=photo.jpg style=[a.jpg,b.jpg] style_weights=[0.3,0.7]

Every failure the user can fix ends in one sentence on stderr and exit code 2, with no output
file written and the inputs untouched.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from nst.api import as_tensor, configured_stylizer, run, stylizer_source
from nst.commands.hydra_cli import config_dir, run_command
from nst.errors import UserError, exit_on_user_error
from nst.image import check_output_path, load_image, save_image
from nst.outputs import (
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    VIDEO_OUTPUT_SUFFIXES,
    atomic_folder,
    check_folder,
    check_output,
    check_overwrite,
    unique_path,
)
from nst.samples import is_sample
from nst.video import is_video


def style_list(style) -> list[str]:
    """`style=` as a list of paths (one path, or a list of them)."""
    if style is None:
        return []
    return [str(item) for item in style] if OmegaConf.is_list(style) else [str(style)]


def stem(path: str) -> str:
    """A short name for an input: the file stem, or the sample's name."""
    return path.removeprefix("sample:") if is_sample(path) else Path(path).stem


def default_output(input_path: str, style: str, overwrite: bool) -> Path:
    """Next to the input (or here for samples): <input>_<style>.png, numbered if it exists."""
    folder = Path.cwd() if is_sample(input_path) else Path(input_path).parent
    return unique_path(folder / f"{stem(input_path)}_{style}.png", overwrite)


def check_image_output(output: Path, inputs: list[str], overwrite: bool) -> None:
    """Refuse an image output of another format, over an input, or existing without overwrite."""
    check_output(check_output_path(output), overwrite, inputs)


def folder_outputs(folder: Path, output: Path, overwrite: bool) -> dict[Path, Path]:
    """Input image → output file for every image in `folder`, checked before any work is done."""
    inputs = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not inputs:
        raise UserError(f"{folder} holds no images; use a folder of .jpg, .png or .webp files.")
    if output.resolve() == folder.resolve():
        raise UserError(f"Output folder {output} is the input folder; choose another output.")
    if output.exists() and not output.is_dir():
        raise UserError(f"Output {output} is a file; with a folder input, output is a folder.")
    check_folder(output)
    targets = {}
    for path in inputs:
        name = path.name if path.suffix.lower() in IMAGE_FORMATS else f"{path.stem}.png"
        if output / name in targets.values():
            raise UserError(f"{folder} has two images named {path.stem}; rename one.")
        targets[path] = check_overwrite(output / name, overwrite)
    return targets


def stylize_folder(cfg: DictConfig, stylizer, style: str) -> None:
    """Stylise every image of the folder `cfg.input` in batches into a folder of outputs, all
    moved into place at the end (`atomic_folder`): a failure on any image leaves no output."""
    from nst.inference import batch_stylizer, check_image_size, same_size_batches
    from nst.methods.common import torch_device

    folder = Path(cfg.input)
    default = unique_path(folder.parent / f"{folder.name}_{style}")
    output = Path(cfg.output) if cfg.output else default
    targets = folder_outputs(folder, output, cfg.overwrite)
    stylize = batch_stylizer(stylizer, torch_device(cfg.device), cfg.precision)

    def read(path: Path):
        image = load_image(path, cfg.size)
        check_image_size(image, str(path))
        return path, image

    with atomic_folder(output, cfg.overwrite) as temporary:
        for paths, batch in same_size_batches(map(read, targets), cfg.batch_size):
            for path, image in zip(paths, stylize(batch).cpu(), strict=True):
                save_image(image, temporary / targets[path].name)
    print(f"Wrote {len(targets)} images to {output}")


def stylize_video_file(cfg: DictConfig, stylizer, style: str) -> None:
    """Stylise the video `cfg.input` frame by frame into an H.264 video with the source's audio."""
    from nst.inference import batch_stylizer
    from nst.methods.common import torch_device
    from nst.video import check_video_output, stylize_video

    input_path = Path(cfg.input)
    suffix = input_path.suffix.lower()
    suffix = suffix if suffix in VIDEO_OUTPUT_SUFFIXES else ".mp4"
    default = unique_path(input_path.with_name(f"{input_path.stem}_{style}{suffix}"), cfg.overwrite)
    output = Path(cfg.output) if cfg.output else default
    check_video_output(output, input_path, cfg.overwrite)
    device = torch_device(cfg.device)
    stylize = batch_stylizer(stylizer, device, cfg.precision)
    report = stylize_video(
        input_path,
        output,
        stylize,
        device,
        cfg.batch_size,
        cfg.size,
        cfg.video.crf,
        cfg.video.preset,
        overwrite=cfg.overwrite,
    )
    for note in report.notes:
        print(f"note: {note}")
    print(report)


def export_stylizer(cfg: DictConfig, stylizer, source: str | Path) -> None:
    """`export=onnx|torchscript`: write the network's graphs next to the checkpoint (a zoo model:
    here), or at `output`; an arbitrary network is two graphs, <stem>.predictor and
    <stem>.transformer."""
    from nst.export import FORMATS, export

    suffix = FORMATS[cfg.export]
    base = Path(cfg.output or source)
    outputs = {
        part: base.with_name(f"{base.stem}.{part}{suffix}")
        if part
        else Path(cfg.output or base.with_suffix(suffix))
        for part in stylizer.graphs()
    }
    for output in outputs.values():
        check_output(output, cfg.overwrite)
    for part, (network, signature) in stylizer.graphs().items():
        difference = export(network, cfg.export, outputs[part], signature, cfg.overwrite)
        print(f"Wrote {outputs[part]} (max abs difference to PyTorch: {difference:.1e})")


def stylize_with_network(cfg: DictConfig, source: str | Path) -> None:
    """`ckpt=PATH` or `model=NAME`: stylise an image, a folder or a video, or export."""
    from nst.export import FORMATS
    from nst.inference import stylize_image

    if cfg.export is not None and cfg.export not in FORMATS:
        raise UserError(f"Unknown export '{cfg.export}'; use onnx or torchscript.")
    if cfg.export is None and OmegaConf.is_missing(cfg, "input"):
        raise UserError("No input: add input=PATH (an image, a folder of images or a video).")
    styles = style_list(cfg.style)
    style_images = [as_tensor(style) for style in styles]
    if cfg.export is not None and not style_images:
        style_images = None  # export needs no style, even for a network that takes any
    stylizer = configured_stylizer(cfg, source, style_images)
    if cfg.export is not None:
        return export_stylizer(cfg, stylizer, source)
    name = stylizer.style_name or "+".join(stem(style) for style in styles)
    input_path = str(cfg.input)
    if Path(input_path).is_dir():
        return stylize_folder(cfg, stylizer, name)
    if is_video(input_path):
        return stylize_video_file(cfg, stylizer, name)
    output = Path(cfg.output or default_output(input_path, name, cfg.overwrite))
    check_image_output(output, [input_path, *styles], cfg.overwrite)
    image = stylize_image(stylizer, as_tensor(input_path), cfg.size, cfg.device, cfg.precision)
    save_image(image, output, overwrite=cfg.overwrite)
    print(f"Wrote {output}")


def list_models() -> None:
    """`model=list`: the zoo, one model per line, its name first."""
    from nst import zoo

    entries = zoo.registry()
    if not entries:
        print("The model zoo is empty; train a model with python train.py method=fast style=wave.")
    width = max(map(len, entries), default=0)
    for name, entry in entries.items():
        style = entry.get("style")
        style = ", ".join(style) if isinstance(style, list) else style
        print(f"{name:<{width}}  method={entry['method']}  style image: {style}")


@hydra.main(config_path=str(config_dir()), config_name="stylize", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    if cfg.model == "list":
        return list_models()
    source = stylizer_source(cfg)
    if source is not None:
        return stylize_with_network(cfg, source)
    if cfg.export is not None:
        raise UserError(
            "export= needs a trained network: add ckpt=PATH (from train.py) or model=NAME."
        )
    if OmegaConf.is_missing(cfg, "input"):
        raise UserError("No input image: add input=PATH (for example input=sample:chelsea).")
    styles = style_list(cfg.style)
    name = "+".join(map(stem, styles)) or "stylized"
    output = Path(cfg.output or default_output(str(cfg.input), name, cfg.overwrite))
    check_image_output(output, [str(cfg.input), *styles], cfg.overwrite)
    content = as_tensor(str(cfg.input))
    style_images = [as_tensor(style) for style in styles]

    def snapshot_path(step: int) -> Path:
        return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")

    image = run(cfg, content, style_images, snapshot_path=snapshot_path)
    save_image(image, output, overwrite=cfg.overwrite)
    print(f"Wrote {output}")


def cli() -> None:
    """The `nst-stylize` command (and `python stylize.py`)."""
    run_command(main, "stylize")


if __name__ == "__main__":
    cli()
