"""`ssps-onnx` in a checkout (`accelerate launch scripts/export_onnx.py ...` for several processes):
runs ssps_trainers/cli/export_onnx.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("export_onnx")
