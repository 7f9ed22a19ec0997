"""`ssps-average` in a checkout (`accelerate launch scripts/average_checkpoints.py ...` for several processes):
runs ssps_trainers/cli/average_checkpoints.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("average_checkpoints")
