"""`ssps-demo` in a checkout (`accelerate launch scripts/demo.py ...` for several processes):
runs ssps_trainers/cli/demo.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("demo")
