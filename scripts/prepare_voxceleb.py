"""`ssps-prepare` in a checkout (`accelerate launch scripts/prepare_voxceleb.py ...` for several processes):
runs ssps_trainers/cli/prepare_voxceleb.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("prepare_voxceleb")
