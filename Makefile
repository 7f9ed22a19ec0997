# One command sets up and tests, one sets up and runs the demo. Both work on a fresh machine
# (Debian, Python 3.11, Node.js with npm, root or sudo for apt: FFmpeg, Chromium, espeak-ng).
VENV ?= .venv
PY := $(VENV)/bin/python
# the exact tested versions (constraints.txt) on top of pyproject's ranges: never another torch build
PIP_INSTALL := $(VENV)/bin/pip install -q --no-compile -c constraints.txt
DEMO_STAMP := $(VENV)/.demo-stamp
DEV_STAMP := $(VENV)/.dev-stamp
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup test demo bench clean

# the demo: FFmpeg (decoding) and the [demo] extra only (training, plots, room simulation)
$(DEMO_STAMP): pyproject.toml constraints.txt
	@command -v ffmpeg >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends ffmpeg; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP_INSTALL) -e ".[demo]"
	@touch $(DEMO_STAMP)

# the tests: everything, plus Chromium (the Space's browser test) and espeak-ng (the optional
# text-to-speech backend of the demo corpus, tested too)
$(DEV_STAMP): pyproject.toml constraints.txt tests/browser/package.json
	@{ command -v ffmpeg >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1; } || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends ffmpeg chromium espeak-ng; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP_INSTALL) -e ".[dev]"
	cd tests/browser && npm install --no-audit --no-fund --silent
	@touch $(DEV_STAMP)

setup: $(DEV_STAMP)

test: $(DEV_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)

QUICK ?=
demo: $(DEMO_STAMP)
	HF_HUB_OFFLINE=1 $(PY) scripts/demo.py --output_dir outputs/demo$(if $(QUICK),-quick --quick,)

bench: $(DEV_STAMP)
	$(PY) benchmarks/bench_encoder.py
	$(PY) benchmarks/bench_ssps.py
	$(PY) benchmarks/bench_dataloader.py
	$(PY) benchmarks/bench_train_step.py

clean:
	rm -rf outputs .pytest_cache
