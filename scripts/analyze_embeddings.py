"""`ssps-analyze` in a checkout (`accelerate launch scripts/analyze_embeddings.py ...` for several processes):
runs ssps_trainers/cli/analyze_embeddings.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("analyze_embeddings")
