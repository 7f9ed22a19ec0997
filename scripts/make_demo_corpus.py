"""`ssps-demo-corpus` in a checkout (`accelerate launch scripts/make_demo_corpus.py ...` for several processes):
runs ssps_trainers/cli/make_demo_corpus.py, whose docstring and --help describe it."""

from ssps_trainers.cli import run

run("make_demo_corpus")
