"""`ssps-evaluate` in a checkout (`accelerate launch scripts/evaluate_sv.py ...` for several processes):
runs ssps_trainers/cli/evaluate_sv.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("evaluate_sv")
