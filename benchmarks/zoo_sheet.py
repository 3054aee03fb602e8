"""The zoo's contact sheet: every shipped model on the bundled public-domain sample photos.

    python benchmarks/zoo_sheet.py [--size 256] [--out docs/zoo.jpg]

Row 1 holds the photos (`sample:astronaut`, `chelsea`, `coffee`, `rocket`, from scikit-image),
each further row one zoo model's output, in registry order. One JPEG, for docs/MODELS.md.
"""

import argparse

import torch
from zoo_quality import save_sheet

from nst import zoo
from nst.image import resize_long_side
from nst.inference import load_stylizer
from nst.samples import load_sample

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default="docs/zoo.jpg")
    args = parser.parse_args()
    photos = [resize_long_side(load_sample(name), args.size) for name in PHOTOS]
    side = min(min(photo.shape[-2:]) for photo in photos)
    photos = [photo[..., :side, :side] for photo in photos]  # square tiles, one size
    tiles = list(photos)
    for name in zoo.names():
        stylizer = load_stylizer(name)
        tiles += [stylizer(photo).clamp(0, 1) for photo in photos]
    save_sheet(tiles, args.out, columns=len(PHOTOS))
    print(f"Wrote {args.out}: {len(zoo.names())} models × {len(PHOTOS)} photos")


if __name__ == "__main__":
    main()
