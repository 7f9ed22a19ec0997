"""`ssps-fill` in a checkout (`accelerate launch scripts/fill_ssps_queues.py ...` for several processes):
runs ssps_trainers/cli/fill_ssps_queues.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("fill_ssps_queues")
