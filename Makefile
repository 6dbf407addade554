# The README's two commands: `make book` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JB := $(BIN)/jupyter-book

.PHONY: book test unit chapters book-strict setup clean bench workshop wheelhouse check-offline

# Create the virtual environment if missing, install the pinned requirements and the package (editable).
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

setup: $(STAMP)

## make book: the executed HTML book in _build/html (execution cached for fast rebuilds).
book: $(STAMP)
	$(JB) build . --keep-going
	@echo "Open _build/html/index.html"

## make test: unit tests, every chapter through nbval, and a strict clean build of the book.
test: unit chapters book-strict

unit: $(STAMP)
	PROSPERITY_CHECK_OFFLINE=1 $(BIN)/python -m pytest tests -q

chapters: $(STAMP)
	$(BIN)/python -m pytest notebooks -q --nbval-lax --nbval-current-env

book-strict: $(STAMP)
	rm -rf _build
	$(JB) build . -W -n --keep-going

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

workshop: $(STAMP)
	$(BIN)/python tools/workshop.py --out workshop

wheelhouse: $(STAMP)
	bash tools/wheelhouse.sh wheelhouse

## make check-offline: build the wheelhouse, then install from it alone into a fresh venv and use the package.
check-offline: $(STAMP)
	bash tools/check_offline_install.sh

clean:
	$(JB) clean . --all || rm -rf _build
	rm -rf .pytest_cache workshop wheelhouse
