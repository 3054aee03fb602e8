"""The command-line programs: `stylize.py` / `nst-stylize` and `train.py` / `nst-train`."""
