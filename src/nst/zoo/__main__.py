"""python -m nst.zoo add NAME path/to/last.ckpt [--paintings DIR ... --holdout RULE]: convert
a checkpoint into a zoo model. For an arbitrary-method model, --paintings (the training style
folders) and --holdout (the run's data.style.holdout) fit the style distribution it ships with."""

import argparse

from nst.zoo import add_model

parser = argparse.ArgumentParser(prog="python -m nst.zoo")
commands = parser.add_subparsers(dest="command", required=True)
add = commands.add_parser("add", help="convert a train.py checkpoint and register it")
add.add_argument("name")
add.add_argument("checkpoint")
add.add_argument("--paintings", nargs="+", help="arbitrary models: the training style folders")
add.add_argument("--holdout", default="0", help="the styles training held out (data.style.holdout)")
arguments = parser.parse_args()

distribution = None
if arguments.paintings:
    from nst.augment import training_distribution

    holdout = int(arguments.holdout) if arguments.holdout.isdigit() else arguments.holdout
    distribution = training_distribution(arguments.checkpoint, arguments.paintings, holdout)
print(add_model(arguments.name, arguments.checkpoint, distribution=distribution))
