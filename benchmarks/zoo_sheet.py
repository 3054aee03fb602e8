"""The zoo's contact sheet: every shipped model on the bundled public-domain sample photos.

    python benchmarks/zoo_sheet.py [--size 256] [--out docs/zoo.jpg]
        [--arbitrary-out docs/arbitrary.jpg]

Row 1 holds the photos (`sample:astronaut`, `chelsea`, `coffee`, `rocket`, from scikit-image),
each further row one fast zoo model's output, in registry order. One JPEG, for docs/MODELS.md.
With the zoo's arbitrary model, a second sheet: public-domain paintings it never trained on
along the top (its training styles, DTD and PACS, are not public domain, so none is shown),
each photo down the left with its stylisations across.
"""

import argparse
from pathlib import Path

import torch
from zoo_quality import save_sheet

from nst import zoo
from nst.image import load_image, resize_long_side
from nst.inference import load_stylizer
from nst.samples import load_sample

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
PAINTINGS = ("adain_mondrian", "starry_night", "wave_lengstrom", "the_scream_lengstrom")
STYLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "assets" / "images" / "style"


def arbitrary_sheet(photos: list, size: int, path: str) -> None:
    """Photos down, public-domain paintings across, the arbitrary model's output in each cell."""
    stylizer = load_stylizer("arbitrary")
    paintings = [load_image(STYLE_DIR / f"{name}.jpg") for name in PAINTINGS]
    thumbnails = [resize_long_side(painting, size) for painting in paintings]
    side = min(photos[0].shape[-1], *(min(t.shape[-2:]) for t in thumbnails))
    tiles = [torch.ones(1, 3, side, side)] + [t[..., :side, :side] for t in thumbnails]
    for photo in photos:
        tiles.append(photo)
        for painting in paintings:
            tiles.append(stylizer.set_styles([painting])(photo).clamp(0, 1))
    save_sheet(tiles, path, columns=len(PAINTINGS) + 1)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default="docs/zoo.jpg")
    parser.add_argument("--arbitrary-out", default="docs/arbitrary.jpg")
    args = parser.parse_args()
    photos = [resize_long_side(load_sample(name), args.size) for name in PHOTOS]
    side = min(min(photo.shape[-2:]) for photo in photos)
    photos = [photo[..., :side, :side] for photo in photos]  # square tiles, one size
    tiles = list(photos)
    fast = [name for name, entry in zoo.registry().items() if entry["method"] == "fast"]
    for name in fast:
        stylizer = load_stylizer(name)
        tiles += [stylizer(photo).clamp(0, 1) for photo in photos]
    save_sheet(tiles, args.out, columns=len(PHOTOS))
    print(f"Wrote {args.out}: {len(fast)} models × {len(PHOTOS)} photos")
    if "arbitrary" in zoo.names():
        arbitrary_sheet(photos, args.size, args.arbitrary_out)
        print(f"Wrote {args.arbitrary_out}: {len(PHOTOS)} photos × {len(PAINTINGS)} paintings")


if __name__ == "__main__":
    main()
