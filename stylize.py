"""Stylise an image from the command line.

    python stylize.py method=basic input=photo.jpg style=painting.jpg [output=out.png] [size=512]
        [device=auto|cpu|cuda] [preserve_color=none|luminance|histogram] [method.iterations=N]
    python stylize.py input=photo.jpg style=[a.jpg,b.jpg] style_weights=[0.3,0.7]
    python stylize.py method=improved input=photo.jpg style=painting.jpg size=1024 method.scales=3
    python stylize.py ckpt=last.ckpt input=photo.jpg|FOLDER [output=PATH] [size=N] [device=…]
        [batch_size=8] [precision=fp32|bf16|fp16]
    python stylize.py ckpt=last.ckpt input=clip.mp4 [output=out.mp4] [size=N] [batch_size=8]
        [video.crf=18] [video.preset=veryfast]
    python stylize.py ckpt=last.ckpt export=onnx|torchscript [output=PATH]
    python stylize.py ckpt=ARB.ckpt input=photo.jpg|FOLDER style=painting.jpg [strength=0.0…1.0]
    python stylize.py ckpt=ARB.ckpt input=photo.jpg style=[a.jpg,b.jpg] style_weights=[0.3,0.7]

Every failure the user can fix ends in one sentence on stderr and exit code 2, with no output
file written and the inputs untouched.
"""

import os
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from nst.api import as_tensor, run
from nst.errors import UserError, exit_on_user_error
from nst.image import IMAGE_FORMATS, check_output_path, save_image
from nst.samples import is_sample
from nst.video import OUTPUT_SUFFIXES, is_video

READABLE = {*IMAGE_FORMATS, ".bmp", ".tif", ".tiff"}


def style_list(style) -> list[str]:
    """`style=` as a list of paths (one path, or a list of them)."""
    if style is None:
        return []
    return [str(item) for item in style] if OmegaConf.is_list(style) else [str(style)]


def stem(path: str) -> str:
    """A short name for an input: the file stem, or the sample's name."""
    return path.removeprefix("sample:") if is_sample(path) else Path(path).stem


def unique_path(path: Path, overwrite: bool = False) -> Path:
    """`path`, or `path` numbered _2, _3, … when it exists (unless `overwrite`)."""
    known = path.suffix in IMAGE_FORMATS or path.suffix in OUTPUT_SUFFIXES
    stem, suffix = (path.stem, path.suffix) if known else (path.name, "")
    candidate, number = path, 2
    while candidate.exists() and not overwrite:
        candidate = path.with_name(f"{stem}_{number}{suffix}")
        number += 1
    return candidate


def default_output(input_path: str, styles: list[str], overwrite: bool) -> Path:
    """Next to the input (or here for samples): <input>_<style>.png, numbered if it exists."""
    folder = Path.cwd() if is_sample(input_path) else Path(input_path).parent
    name = "_".join([stem(input_path), "+".join(stem(style) for style in styles) or "stylized"])
    return unique_path(folder / f"{name}.png", overwrite)


def check_output(output: Path, inputs: list[str], overwrite: bool) -> None:
    """Refuse an output that would overwrite an input, or any file without overwrite=true."""
    check_output_path(output)
    for path in inputs:
        if not is_sample(path) and Path(path).resolve() == output.resolve():
            raise UserError(f"Output {output} is also an input; choose another output path.")
    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; pass overwrite=true or choose another output.")


def folder_outputs(folder: Path, output: Path, overwrite: bool) -> dict[Path, Path]:
    """Input image → output file for every image in `folder`, checked before any work is done."""
    inputs = sorted(path for path in folder.iterdir() if path.suffix.lower() in READABLE)
    if not inputs:
        raise UserError(f"{folder} holds no images; use a folder of .jpg, .png or .webp files.")
    if output.resolve() == folder.resolve():
        raise UserError(f"Output folder {output} is the input folder; choose another output.")
    if output.exists() and not output.is_dir():
        raise UserError(f"Output {output} is a file; with a folder input, output is a folder.")
    if not output.parent.is_dir():
        raise UserError(f"Output folder {output.parent} does not exist; create it or pick another.")
    targets = {}
    for path in inputs:
        name = path.name if path.suffix.lower() in IMAGE_FORMATS else f"{path.stem}.png"
        if output / name in targets.values():
            raise UserError(f"{folder} has two images named {path.stem}; rename one.")
        if (output / name).exists() and not overwrite:
            raise UserError(
                f"{output / name} already exists; pass overwrite=true or choose another output."
            )
        targets[path] = output / name
    return targets


def stylize_folder(cfg: DictConfig, network, style: str) -> None:
    """Stylise every image of the folder `cfg.input` in batches into a folder of outputs.

    Outputs are written to a temporary folder and moved into place at the end, so a failure on
    any image leaves no partial output.
    """
    from nst.inference import load_content, prepare, same_size_batches, stylize_batch
    from nst.methods.common import torch_device

    folder = Path(cfg.input)
    output = (
        Path(cfg.output) if cfg.output else unique_path(folder.parent / f"{folder.name}_{style}")
    )
    targets = folder_outputs(folder, output, cfg.overwrite)
    device = torch_device(cfg.device)
    network = prepare(network, device)
    images = ((path, load_content(path, cfg.size)) for path in targets)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as temporary:
        for paths, batch in same_size_batches(images, cfg.batch_size):
            outputs = stylize_batch(network, batch, device, cfg.precision)
            for path, image in zip(paths, outputs, strict=True):
                save_image(image, Path(temporary) / targets[path].name)
        output.mkdir(exist_ok=True)
        for target in targets.values():
            os.replace(Path(temporary) / target.name, target)
    print(f"Wrote {len(targets)} images to {output}")


def stylize_video_file(cfg: DictConfig, network, style: str) -> None:
    """Stylise the video `cfg.input` frame by frame into an H.264 video with the source's audio.

    `network` is a fast-method `TransformNet` or an arbitrary-method `StyledTransform` (the
    style embedding computed once); either maps a batch of frames to stylised frames.
    """
    from nst.inference import batch_stylizer
    from nst.methods.common import torch_device
    from nst.video import check_video_output, stylize_video

    input_path = Path(cfg.input)
    suffix = input_path.suffix.lower() if input_path.suffix.lower() in OUTPUT_SUFFIXES else ".mp4"
    default = unique_path(input_path.with_name(f"{input_path.stem}_{style}{suffix}"), cfg.overwrite)
    output = Path(cfg.output) if cfg.output else default
    check_video_output(output, input_path, cfg.overwrite)
    device = torch_device(cfg.device)
    stylize = batch_stylizer(network, device, cfg.precision)
    report = stylize_video(input_path, output, stylize, device, cfg.batch_size, cfg.size,
                           cfg.video.crf, cfg.video.preset)  # fmt: skip
    for note in report.notes:
        print(f"note: {note}")
    print(report)


def export_checkpoint(cfg: DictConfig, network) -> None:
    """`export=onnx|torchscript`: write the network next to the checkpoint (or to `output`)."""
    from nst.export import FORMATS, export

    if cfg.export not in FORMATS:
        raise UserError(f"Unknown export '{cfg.export}'; use onnx or torchscript.")
    checkpoint = Path(cfg.ckpt)
    output = Path(cfg.output or checkpoint.with_suffix(FORMATS[cfg.export]))
    if not output.parent.is_dir():
        raise UserError(f"Output folder {output.parent} does not exist; create it or pick another.")
    if output.exists() and not cfg.overwrite:
        raise UserError(f"{output} already exists; pass overwrite=true or choose another output.")
    difference = export(network, cfg.export, output)
    print(f"Wrote {output} (max abs difference to PyTorch on a random image: {difference:.1e})")


def export_arbitrary(cfg: DictConfig) -> None:
    """`export=` of an arbitrary-method checkpoint: two graphs, <stem>.predictor and
    <stem>.transformer (next to the checkpoint, or beside `output`)."""
    from nst.export import FORMATS, export, predictor_signature, transformer_signature
    from nst.inference import load_arbitrary

    if cfg.export not in FORMATS:
        raise UserError(f"Unknown export '{cfg.export}'; use onnx or torchscript.")
    base = Path(cfg.output or cfg.ckpt)
    outputs = {part: base.with_name(f"{base.stem}.{part}{FORMATS[cfg.export]}")
               for part in ("predictor", "transformer")}  # fmt: skip
    if not base.parent.is_dir():
        raise UserError(f"Output folder {base.parent} does not exist; create it or pick another.")
    for output in outputs.values():
        if output.exists() and not cfg.overwrite:
            raise UserError(
                f"{output} already exists; pass overwrite=true or choose another output."
            )
    predictor, transform, hparams = load_arbitrary(cfg.ckpt)
    signatures = {
        "predictor": (predictor, predictor_signature()),
        "transformer": (transform, transformer_signature(hparams["predictor"]["embedding_size"])),
    }
    for part, (network, signature) in signatures.items():
        difference = export(network, cfg.export, outputs[part], signature)
        print(f"Wrote {outputs[part]} (max abs difference to PyTorch: {difference:.1e})")


def stylize_with_arbitrary(cfg: DictConfig) -> None:
    """`ckpt=` of the arbitrary method: stylise with `style=` (one image or a weighted list)."""
    from nst.inference import arbitrary_network, stylize_image
    from nst.methods.basic import check_style_weights

    if cfg.export is not None:
        return export_arbitrary(cfg)
    if OmegaConf.is_missing(cfg, "input"):
        raise UserError("No input: add input=PATH (an image, a folder of images or a video).")
    styles = style_list(cfg.style)
    if not styles:
        raise UserError(f"{cfg.ckpt} stylises with any style image: add style=PATH.")
    check_style_weights(styles, cfg.style_weights)
    name = "+".join(stem(style) for style in styles)
    folder = Path(str(cfg.input)).is_dir()
    video = not folder and is_video(str(cfg.input))
    if not folder and not video:
        input_path = str(cfg.input)
        output = Path(cfg.output or default_output(input_path, styles, cfg.overwrite))
        check_output(output, [input_path, *styles], cfg.overwrite)
    weights = None if cfg.style_weights is None else list(cfg.style_weights)
    style_images = [as_tensor(style) for style in styles]
    network = arbitrary_network(cfg.ckpt, style_images, weights, cfg.strength, cfg.style_size)
    if folder:
        return stylize_folder(cfg, network, name)
    if video:
        return stylize_video_file(cfg, network, name)
    save_image(stylize_image(network, as_tensor(input_path), cfg.size, cfg.device, cfg.precision),
               output)  # fmt: skip
    print(f"Wrote {output}")


def stylize_with_checkpoint(cfg: DictConfig) -> None:
    """`ckpt=PATH`: stylise an image or a folder with a trained network, or export it."""
    from nst.inference import checkpoint_method, load_network, style_name, stylize_image

    if checkpoint_method(cfg.ckpt) == "arbitrary":
        return stylize_with_arbitrary(cfg)
    network, hparams = load_network(cfg.ckpt)
    if cfg.style is not None:
        raise UserError(
            f"{cfg.ckpt} stylises in its own style ({style_name(hparams)}); drop style=."
        )
    if cfg.export is not None:
        return export_checkpoint(cfg, network)
    if OmegaConf.is_missing(cfg, "input"):
        raise UserError("No input: add input=PATH (an image, a folder of images or a video).")
    if Path(str(cfg.input)).is_dir():
        return stylize_folder(cfg, network, style_name(hparams))
    if is_video(str(cfg.input)):
        return stylize_video_file(cfg, network, style_name(hparams))
    input_path = str(cfg.input)
    output = Path(cfg.output or default_output(input_path, [style_name(hparams)], cfg.overwrite))
    check_output(output, [input_path], cfg.overwrite)
    content = as_tensor(input_path)
    save_image(stylize_image(network, content, cfg.size, cfg.device, cfg.precision), output)
    print(f"Wrote {output}")


@hydra.main(config_path="conf", config_name="stylize", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    if cfg.ckpt is not None:
        return stylize_with_checkpoint(cfg)
    if cfg.export is not None:
        raise UserError("export= needs a trained network: add ckpt=PATH (from train.py).")
    if OmegaConf.is_missing(cfg, "input"):
        raise UserError("No input image: add input=PATH (for example input=sample:chelsea).")
    styles = style_list(cfg.style)
    inputs = [str(cfg.input), *styles]
    if cfg.output is None:
        output = default_output(str(cfg.input), styles, cfg.overwrite)
    else:
        output = Path(cfg.output)
    check_output(output, inputs, cfg.overwrite)
    content = as_tensor(str(cfg.input))
    style_images = [as_tensor(style) for style in styles]

    def snapshot_path(step: int) -> Path:
        return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")

    image = run(cfg, content, style_images, snapshot_path=snapshot_path)
    save_image(image, output)
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
