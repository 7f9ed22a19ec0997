"""`ssps-augment-sets` in a checkout (`accelerate launch scripts/make_augmentation_sets.py ...` for several processes):
runs ssps_trainers/cli/make_augmentation_sets.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("make_augmentation_sets")
