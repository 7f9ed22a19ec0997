"""`ssps-train` in a checkout (`accelerate launch scripts/train.py ...` for several processes):
runs ssps_trainers/cli/train.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("train")
