"""Stylise an image, a folder or a video: python stylize.py input=PHOTO style=PAINTING.

The program, and its usage in full, is `nst.commands.stylize` (installed as `nst-stylize`;
`python stylize.py --help` prints what to type); this file runs it.
"""

from nst.commands.stylize import cli

if __name__ == "__main__":
    cli()
