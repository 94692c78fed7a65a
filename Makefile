# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv, installs system packages it needs (espeak-ng for prompts) and the project.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup system-packages clean bench

system-packages:
	@bash scripts/install-system-packages.sh

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,postgres]'
	touch $(STAMP)

setup: system-packages $(STAMP)

demo: setup
	$(BIN)/hotline simulate flows/main.yaml --now 2026-11-24T10:00+08:00

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/fastagi.py
	$(BIN)/python bench/ami_ingest.py
	$(BIN)/python bench/tracker.py

clean:
	rm -rf $(VENV) build *.egg-info
