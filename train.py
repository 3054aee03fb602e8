"""Train a feed-forward style network: python train.py method=fast style=wave.

The program, and its usage in full, is `nst.commands.train` (installed as `nst-train`;
`python train.py --help` prints what to type); this file runs it.
"""

from nst.commands.train import cli

if __name__ == "__main__":
    cli()
