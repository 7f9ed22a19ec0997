"""`ssps-diagnose` in a checkout (`accelerate launch scripts/diagnose_ssps.py ...` for several processes):
runs ssps_trainers/cli/diagnose_ssps.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("diagnose_ssps")
