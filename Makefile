# pianoeval: `make repro` rebuilds the pipeline, `make test` runs the tests, `make bench` times it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := libfluidsynth3 musescore-general-soundfont fluid-soundfont-gm

.PHONY: setup system-packages repro test bench clean deps

setup: system-packages $(STAMP)

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

# torch==2.13.0 (the CPU build on these machines) is pinned in pyproject.toml, so it is resolved
# in the same pip step as everything else; a separate unpinned step would pull a CUDA build.
$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(BIN)/python -m pip install -q -e '.[dev]' > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(BIN)/python -c "import pianoeval, torch, dvc, symusic" # fail here if the install did not work
	$(BIN)/python -m pianoeval.assets
	@touch $@

repro: setup
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro
	$(BIN)/pianoeval readme --metrics metrics/eval.json --readme README.md

# Each stage's code deps in dvc.yaml, derived from what its script imports (tests/test_pipeline_deps.py
# fails when they are stale).
deps: $(STAMP)
	$(BIN)/python -m pianoeval.pipeline_deps --write

test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

bench: setup
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
