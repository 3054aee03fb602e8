"""Stylise an image from the command line.

    python stylize.py method=basic input=photo.jpg style=painting.jpg [output=out.png] [size=512]
        [device=auto|cpu|cuda] [preserve_color=none|luminance|histogram] [method.iterations=N]
    python stylize.py input=photo.jpg style=[a.jpg,b.jpg] style_weights=[0.3,0.7]
    python stylize.py method=improved input=photo.jpg style=painting.jpg size=1024 method.scales=3

Every failure the user can fix ends in one sentence on stderr and exit code 2, with no output
file written and the inputs untouched.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from nst.api import as_tensor, run
from nst.errors import UserError, exit_on_user_error
from nst.image import check_output_path, save_image
from nst.samples import is_sample


def style_list(style) -> list[str]:
    """`style=` as a list of paths (one path, or a list of them)."""
    if style is None:
        return []
    return [str(item) for item in style] if OmegaConf.is_list(style) else [str(style)]


def stem(path: str) -> str:
    """A short name for an input: the file stem, or the sample's name."""
    return path.removeprefix("sample:") if is_sample(path) else Path(path).stem


def default_output(input_path: str, styles: list[str], overwrite: bool) -> Path:
    """Next to the input (or here for samples): <input>_<style>.png, numbered if it exists."""
    folder = Path.cwd() if is_sample(input_path) else Path(input_path).parent
    name = "_".join([stem(input_path), "+".join(stem(style) for style in styles) or "stylized"])
    output = folder / f"{name}.png"
    number = 2
    while output.exists() and not overwrite:
        output = folder / f"{name}_{number}.png"
        number += 1
    return output


def check_output(output: Path, inputs: list[str], overwrite: bool) -> None:
    """Refuse an output that would overwrite an input, or any file without overwrite=true."""
    check_output_path(output)
    for path in inputs:
        if not is_sample(path) and Path(path).resolve() == output.resolve():
            raise UserError(f"Output {output} is also an input; choose another output path.")
    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; pass overwrite=true or choose another output.")


@hydra.main(config_path="conf", config_name="stylize", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
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
