# One command sets up and tests, one sets up and runs the demo. Both work on a fresh machine
# (Debian, Python 3.11, Node.js with npm, root or sudo for apt: FFmpeg, Chromium, espeak-ng).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup test demo bench clean

# system packages: FFmpeg (m4a decoding), Chromium (the Space's browser test), espeak-ng (the
# optional text-to-speech backend of the demo corpus, tested too)
$(STAMP): pyproject.toml tests/browser/package.json
	@{ command -v ffmpeg >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends ffmpeg chromium espeak-ng; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --no-compile -e ".[dev]"
	cd tests/browser && npm install --no-audit --no-fund --silent
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)

QUICK ?=
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) scripts/demo.py --output_dir outputs/demo$(if $(QUICK),-quick --quick,)

bench: $(STAMP)
	$(PY) benchmarks/bench_encoder.py
	$(PY) benchmarks/bench_ssps.py
	$(PY) benchmarks/bench_dataloader.py
	$(PY) benchmarks/bench_train_step.py

clean:
	rm -rf outputs .pytest_cache
