# The README's two commands: `make book` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JB := $(BIN)/jupyter-book

.PHONY: book test unit chapters book-strict pack test-spark setup lab clean bench workshop wheelhouse check-offline

# Create the virtual environment if missing, install the pinned requirements and the package (editable).
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

setup: $(STAMP)

LAB_STAMP := $(VENV)/.lab-installed
$(LAB_STAMP): requirements-lab.txt $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-lab.txt
	$(BIN)/python -m pip check
	touch $(LAB_STAMP)

## make lab: JupyterLab on the participants' notebooks (the workshop pack's, prose rendered for Jupyter).
lab: $(LAB_STAMP)
	$(BIN)/python tools/workshop.py --out workshop --no-zip
	$(BIN)/jupyter lab workshop/notebooks

SPARK_STAMP := $(VENV)/.spark-installed
$(SPARK_STAMP): requirements-spark.txt $(STAMP)
	command -v java >/dev/null || { apt-get update && apt-get install -y --no-install-recommends default-jre-headless; }
	java -version
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-spark.txt
	$(BIN)/python -m pip check
	touch $(SPARK_STAMP)

## make spark: Java (Debian's default-jre-headless when java is absent) and pyspark for the Spark engine.
.PHONY: spark
spark: $(SPARK_STAMP)

## make book: the executed HTML book in _build/html (execution cached for fast rebuilds).
book: $(STAMP)
	$(BIN)/python tools/execute_chapters.py
	$(JB) build . --keep-going
	@echo "Open _build/html/index.html"

## make test: unit tests (Spark's included), a strict clean build of the book (it executes every chapter: a cell
## that raises fails it), then the participants' pack and each chapter's execution time from the build's records.
## `make chapters` runs the chapters cell by cell through nbval, to read a failure cell by cell.
## Parallel on every core: pytest-xdist runs test files (unit) and pack notebooks side by side, and
## tools/execute_chapters.py executes the chapters side by side into the build's cache before the build renders.
## JOBS=1 runs everything one at a time.
JOBS ?= auto
test: unit book-strict pack

unit: $(STAMP) $(SPARK_STAMP) browser
	PROSPERITY_CHECK_OFFLINE=1 $(BIN)/python -m pytest tests -q -m "not pack" -n $(JOBS) --dist loadfile

## make test-spark: only the Spark tests (the linker and AKM on Spark local mode against DuckDB; part of make unit).
test-spark: $(SPARK_STAMP)
	$(BIN)/python -m pytest tests/test_spark.py tests/test_akm_spark.py -q

## make pack: the participants' notebooks (rendered from the book build's executed chapters) run cell by cell.
pack: $(STAMP)
	$(BIN)/python -m pytest tests/test_chapter_times.py tests/test_pack.py -q -m pack -n $(JOBS) --dist load

chapters: $(STAMP)
	$(BIN)/python -m pytest notebooks -q --nbval-lax --nbval-current-env

book-strict: $(STAMP)
	rm -rf _build
	$(BIN)/python tools/execute_chapters.py $(if $(filter auto,$(JOBS)),,--jobs $(JOBS))
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

## make browser: Debian's Chromium and chromedriver for the headless-browser test of the district explorer
## (tests/test_explorer.py), installed with apt-get where /usr/bin/chromium is absent.
.PHONY: browser
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi
