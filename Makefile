# pianoeval: `make repro` rebuilds the pipeline, `make test` runs the tests, `make bench` times it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := libfluidsynth3 musescore-general-soundfont fluid-soundfont-gm \
                   chromium  # headless, for the assess report test

.PHONY: setup system-packages transcription repro test bench clean deps lock

setup: system-packages $(STAMP) transcription

# Debian packages: installed when running as root, otherwise a message saying what to install.
system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

# Every package at the exact version in requirements.lock (the environment the committed metrics
# came from), installed by uv with --no-deps: seconds instead of pip's minute or more of resolving
# and unpacking, and the same environment on every machine. uv reads pip's package sources (the
# local wheel folder holding the CPU torch, extra indexes) from pip's configuration, the extra
# indexes last first: of a version several indexes hold, uv takes the first index's files where pip
# takes the best wheel of all (here the last index holds the platform wheels of soundfile, with
# its own libsndfile, and tensorboard-data-server; same wheels as pip then). `uv pip check`
# then fails the set-up if pyproject.toml asks for something the lock lacks: add it to the venv
# (`.venv/bin/uv pip install <package>`) and run `make lock`.
LOCK := requirements.lock
UV := $(BIN)/uv
UV_SOURCES = UV_FIND_LINKS="$$($(BIN)/python -m pip config get global.find-links 2>/dev/null)" \
	UV_EXTRA_INDEX_URL="$$($(BIN)/python -m pip config get global.extra-index-url 2>/dev/null \
	  | tr ' ' '\n' | tac | tr '\n' ' ')" \
	UV_INDEX_STRATEGY=unsafe-best-match
# --compile-bytecode as pip does: with PYTHONDONTWRITEBYTECODE set (as on these machines) nothing
# writes .pyc later, and every stage process would recompile torch & co. on import (2x slower tests).
UV_INSTALL = $(UV_SOURCES) $(UV) pip install -q --python $(BIN)/python --no-deps --compile-bytecode

$(STAMP): pyproject.toml $(LOCK)
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==0.13.10 > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(UV_INSTALL) -r $(LOCK) -e . > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@! $(UV) pip check --python $(BIN)/python 2>&1 | grep requires | grep -v -E '`($(NODEPS_RE))`'
	$(BIN)/python -c "import pianoeval, torch, dvc, symusic" # fail here if the install did not work
	$(BIN)/python -m pianoeval.assets
	@touch $@

lock: $(STAMP)
	{ echo "# Exact versions of the whole environment: make setup installs them with --no-deps;"; \
	  echo "# make lock rewrites this file from .venv."; \
	  $(UV) pip freeze -q --python $(BIN)/python --exclude-editable \
	  | grep -v -i -E '^(pip|uv|pyflakes|$(NODEPS_RE))=='; } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)

# Audio -> MIDI for `pianoeval assess` (src/pianoeval/assess/transcribe.py), not in pyproject.toml:
# transkun's declared requirements pull torchaudio (PyPI's newest, 2.11.1, is built against CUDA
# torch and fails to load next to the CPU torch) and basic-pitch's pull TensorFlow. So the two
# install with --no-deps, and what they import at inference is in the lock (onnxruntime, mir_eval,
# moduleconf, resampy 0.4.3 although basic-pitch asks for <0.4.3: 0.4.2 imports pkg_resources,
# which current setuptools lacks). They stay out of the lock so that `uv pip check` holds.
TRANSCRIPTION_STAMP := $(VENV)/.transcription
TRANSCRIPTION_NODEPS := transkun==2.0.1 basic-pitch==0.4.0
NODEPS_RE := transkun|basic-pitch

transcription: $(TRANSCRIPTION_STAMP)

$(TRANSCRIPTION_STAMP): $(STAMP) Makefile
	$(UV_INSTALL) $(TRANSCRIPTION_NODEPS) > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(BIN)/python -c "import logging; logging.disable(logging.WARNING); import torch, transkun.ModelTransformer, moduleconf, basic_pitch.inference, resampy.filters, onnxruntime" # fail here if the install did not work
	@touch $@

repro: setup
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro
	$(BIN)/pianoeval readme --metrics metrics/eval.json --readme README.md

# Each stage's code deps in dvc.yaml, derived from what its script imports (tests/test_pipeline_deps.py
# fails when they are stale).
deps: $(STAMP)
	$(BIN)/python -m pianoeval.pipeline_deps --write

# Two pytest workers (pytest-xdist): the end-to-end test, which tests/conftest.py puts first, on
# one, every other test file on the other.
test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -n 2 --dist loadfile

# benchmarks/stages.py times a cold `make repro` stage by stage in a fresh clone (hours on 2 cores;
# resumable with --resume --clone DIR); run.py times the rest with the cold run left to it.
bench: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python benchmarks/stages.py --out benchmarks/stages.md
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python benchmarks/run.py --out benchmarks/results.md
	$(BIN)/python benchmarks/seed_sensitivity.py --out benchmarks/seed_sensitivity.md
	$(BIN)/python benchmarks/align_bench.py
	$(BIN)/python benchmarks/audio_bench.py
	$(BIN)/python benchmarks/degrade_bench.py
	$(BIN)/python benchmarks/train_bench.py
	$(BIN)/python benchmarks/pretrain_bench.py
	$(BIN)/python benchmarks/fusion_bench.py

clean:
	rm -rf $(VENV) .pytest_cache
