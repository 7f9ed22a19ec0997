"""`ssps-export` in a checkout (`accelerate launch scripts/export_to_hub.py ...` for several processes):
runs ssps_trainers/cli/export_to_hub.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("export_to_hub")
