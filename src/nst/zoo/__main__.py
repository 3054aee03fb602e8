"""python -m nst.zoo add NAME path/to/last.ckpt: convert a checkpoint into a zoo model."""

import sys

from nst.zoo import add_model

if len(sys.argv) != 4 or sys.argv[1] != "add":
    sys.exit("usage: python -m nst.zoo add NAME path/to/last.ckpt")
print(add_model(sys.argv[2], sys.argv[3]))
