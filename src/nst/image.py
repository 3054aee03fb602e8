"""Images at the package's edges: read, resize, write, and colour preservation.

Inside the package an image is an RGB float tensor in [0, 1], N×3×H×W.
"""

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from nst.errors import UserError
from nst.outputs import IMAGE_FORMATS, atomic_file, check_folder
from nst.samples import is_sample, load_sample

COLOR_MODES = ("none", "luminance", "histogram")

# Y of YIQ (the NTSC luma) and the I, Q chroma rows.
RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as 8-bit RGB, upright by its EXIF orientation.

    Grayscale, 16-bit, palette and transparent images become RGB (transparency over white).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image; give an image file.")
    if not path.is_file():
        raise UserError(f"Image not found: {path}; check the path.")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise UserError(
            f"{path} claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's guard "
            "against decompression bombs; use a smaller image."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        reason = "it is empty" if path.stat().st_size == 0 else f"{error}".rstrip(".")
        raise UserError(
            f"Cannot read {path} as an image ({reason}); use a PNG, JPEG or WebP file."
        ) from None
    if image.width == 0 or image.height == 0:
        raise UserError(f"{path} has no pixels ({image.width}×{image.height}); use another image.")
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, scaling 16/32-bit values instead of clipping them."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 1.0 if image.mode == "F" else (65535.0 if values.max() > 255 else 255.0)
        gray = np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def from_pil(image: Image.Image) -> Tensor:
    """PIL image → 1×3×H×W float tensor in [0, 1]."""
    array = np.asarray(to_rgb(image), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255


def to_pil(image: Tensor) -> Image.Image:
    """1×3×H×W (or 3×H×W) tensor in [0, 1] → PIL RGB image (values clamped, rounded)."""
    image = image.detach().float().cpu()
    if image.dim() == 4:
        image = image[0]
    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def long_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) scaled so that the longer side is `size`, keeping the aspect ratio."""
    if size <= 0:
        raise UserError(f"Image size must be positive, got {size}.")
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_long_side(image: Tensor, size: int, mode: str = "bicubic") -> Tensor:
    """Resize N×3×H×W so its longer side is `size`, keeping the aspect ratio (antialiased,
    bicubic or `mode`); the one resize of nst's images."""
    height, width = image.shape[-2:]
    new_size = long_side_shape(height, width, size)
    if new_size == (height, width):
        return image
    resized = F.interpolate(image, size=new_size, mode=mode, antialias=True)
    return resized.clamp(0, 1)


def load_image(path: str | os.PathLike, size: int | None = None) -> Tensor:
    """Read an image file (or `sample:NAME`) as 1×3×H×W in [0, 1], long side resized to `size`."""
    image = load_sample(path) if is_sample(path) else from_pil(open_image(path))
    return image if size is None else resize_long_side(image, size)


def check_output_path(path: str | os.PathLike) -> Path:
    """Check that `path` names a supported format in an existing folder; return it as a Path."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise UserError(
            f"Cannot write '{path.name}': use a .png, .jpg or .webp extension for the output."
        )
    return check_folder(path)


def save_image(
    image: Tensor, path: str | os.PathLike, quality: int = 95, overwrite: bool = True
) -> Path:
    """Write an image by extension (PNG/JPEG/WebP) atomically (`nst.outputs.atomic_file`; without
    `overwrite` an existing file is refused, also one that appeared while this run worked)."""
    path = check_output_path(path)
    pil = to_pil(image)
    with atomic_file(path, overwrite) as temporary, open(temporary, "wb") as file:
        pil.save(file, format=IMAGE_FORMATS[path.suffix.lower()], quality=quality)
    return path


def rgb_to_yiq(image: Tensor) -> Tensor:
    """RGB → YIQ per pixel (N×3×H×W); channel 0 is the luminance Y = .299R + .587G + .114B."""
    return torch.einsum("ij,njhw->nihw", RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    """YIQ → RGB per pixel, the exact inverse of `rgb_to_yiq`."""
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(RGB_TO_YIQ).to(image), image)


def luminance(image: Tensor) -> Tensor:
    """The Y channel of YIQ, N×1×H×W."""
    return rgb_to_yiq(image)[:, :1]


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Style luminance matched to the content's statistics, as a gray RGB image.

    Gatys et al. 2016 "Preserving Color" §(b): L_S' = (σ_C / σ_S)(L_S − μ_S) + μ_C.
    """
    style_y, content_y = luminance(style), luminance(content)
    matched = (style_y - style_y.mean()) * (content_y.std() / style_y.std().clamp_min(1e-5))
    return (matched + content_y.mean()).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def combine_luminance(output: Tensor, content: Tensor) -> Tensor:
    """Output luminance with the content's I and Q, in RGB ("Preserving Color" §(b), step 4)."""
    yiq = torch.cat([luminance(output), rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _matrix_power(covariance: Tensor, power: float) -> Tensor:
    values, vectors = torch.linalg.eigh(covariance)
    return vectors @ torch.diag(values.clamp_min(1e-8).pow(power)) @ vectors.T


def match_color_histogram(style: Tensor, content: Tensor, mode: str = "pca") -> Tensor:
    """Recolour `style` so its pixel mean and covariance match the content's.

    Gatys et al. 2016 "Preserving Color" §(a): p_S' = A p_S + b with b = μ_C − A μ_S and
    A Σ_S Aᵀ = Σ_C. `mode` picks A as in the authors' `match_color`: `pca` (Σ_C^½ Σ_S^-½, their
    default), `chol` (L_C L_S⁻¹) or `sym` (Σ_S^-½ (Σ_S^½ Σ_C Σ_S^½)^½ Σ_S^-½). Covariances get
    +1e-5·I as there.
    """
    style_pixels = style.double().reshape(3, -1)
    content_pixels = content.double().reshape(3, -1)
    style_mean = style_pixels.mean(1, keepdim=True)
    content_mean = content_pixels.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64) * 1e-5
    style_cov = torch.cov(style_pixels) + eye
    content_cov = torch.cov(content_pixels) + eye
    if mode == "pca":
        transform = _matrix_power(content_cov, 0.5) @ _matrix_power(style_cov, -0.5)
    elif mode == "chol":
        transform = torch.linalg.cholesky(content_cov) @ torch.linalg.inv(
            torch.linalg.cholesky(style_cov)
        )
    elif mode == "sym":
        style_root, style_inverse_root = (
            _matrix_power(style_cov, 0.5),
            _matrix_power(style_cov, -0.5),
        )
        middle = _matrix_power(style_root @ content_cov @ style_root, 0.5)
        transform = style_inverse_root @ middle @ style_inverse_root
    else:
        raise UserError(f"Unknown histogram matching mode '{mode}'; use pca, chol or sym.")
    matched = transform @ (style_pixels - style_mean) + content_mean
    return matched.reshape(style.shape).to(style.dtype).clamp(0, 1)


def check_color_mode(mode: str) -> None:
    """Raise a `UserError` unless `mode` is a `preserve_color` setting."""
    if mode not in COLOR_MODES:
        raise UserError(f"Unknown preserve_color '{mode}'; use one of {', '.join(COLOR_MODES)}.")


def prepare_color_preservation(
    content: Tensor, styles: list[Tensor], mode: str
) -> tuple[Tensor, list[Tensor]]:
    """The content and style images to run the transfer on for colour preservation `mode`.

    `luminance`: both become gray luminance images, the style's matched to the content's
    statistics. `histogram`: each style is recoloured to the content's colour statistics.
    """
    check_color_mode(mode)
    if mode == "luminance":
        gray_content = luminance(content).expand(-1, 3, -1, -1).contiguous()
        return gray_content, [match_luminance(style, content) for style in styles]
    if mode == "histogram":
        return content, [match_color_histogram(style, content) for style in styles]
    return content, styles


def finish_color_preservation(output: Tensor, content: Tensor, mode: str) -> Tensor:
    """Undo what `prepare_color_preservation` did: put the content's chroma back for `luminance`."""
    if mode == "luminance":
        return combine_luminance(output, content)
    return output


def keep_content_colors(output: Tensor, content: Tensor, mode: str) -> Tensor:
    """A trained network's N×3×H×W output with each content image's colours (`mode`):
    `luminance` keeps the output's luminance with the content's chroma (YIQ), `histogram`
    matches the output's colour mean and covariance to the content's ("Preserving Color")."""
    if mode == "luminance":
        return combine_luminance(output, content)
    if mode == "histogram":
        pairs = zip(output.split(1), content.split(1), strict=True)
        return torch.cat([match_color_histogram(image, photo) for image, photo in pairs])
    return output
