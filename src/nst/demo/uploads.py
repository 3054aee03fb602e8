"""The demo's images: uploads checked before anything decodes them, bundled samples, file names.

Every problem with an upload becomes one `UserError` sentence that names the file and the fix.
"""

import re
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from nst.errors import UserError
from nst.image import to_pil, to_rgb
from nst.samples import DRAWN, PHOTOS, PREFIX, is_sample, load_sample

DEFAULT_MAX_SIDE = 6000  # px, the long side of the largest upload the page accepts
SAMPLE_PHOTOS = [PREFIX + name for name in PHOTOS]
SAMPLE_PAINTINGS = [PREFIX + name for name in DRAWN]


def read_upload(path: str | Path, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """The uploaded image file at `path` as RGB, upright by EXIF; a `UserError` for a bad file.

    The size limit is checked on the header alone, so a huge image is refused before decoding.
    """
    path = Path(path)
    name = path.name
    if not path.is_file() or path.stat().st_size == 0:
        raise UserError(f"{name} is empty; upload a PNG, JPEG or WebP image.")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if max(width, height) > max_side:
                raise UserError(too_large(name, f"{width}×{height} px", max_side))
            try:
                image.load()
            except (OSError, SyntaxError, ValueError) as error:
                raise UserError(
                    f"{name} is truncated or damaged ({str(error).rstrip('.')}); "
                    "upload the complete file."
                ) from None
            upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise UserError(too_large(name, "too many pixels", max_side)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(
            f"{name} is not an image this page can read; upload a PNG, JPEG or WebP file."
        ) from None
    if upright.width == 0 or upright.height == 0:
        raise UserError(f"{name} has no pixels; upload another image.")
    return to_rgb(upright)


def too_large(name: str, size: str, max_side: int) -> str:
    """The message for an upload over the size limit."""
    return (
        f"{name} is too large ({size}); this page takes images up to {max_side} px on the "
        "long side: shrink it first."
    )


def read_source(source: str, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """An image chosen on the page: `sample:NAME` or the path of an upload."""
    if is_sample(source):
        return to_pil(load_sample(source))
    return read_upload(source, max_side)


def source_label(source: str) -> str:
    """A short name for an image source, fit for a file name: `astronaut`, `my_photo`."""
    stem = source.removeprefix(PREFIX) if is_sample(source) else Path(source).stem
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "image"


def result_name(photo: str, style: str) -> str:
    """The download's file name: `<photo>_<style>.png`, the style as short file-name text."""
    style = re.sub(r"[^A-Za-z0-9_+-]+", "_", style).strip("_") or "stylized"
    return f"{source_label(photo)}_{style}.png"
