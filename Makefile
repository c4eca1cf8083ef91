# Idempotent setup: the virtualenv in .venv is (re)built only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: circle studio test test-thorough bench docs notebooks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("tinygrad_edu needs Python 3.10 or newer, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## circle: set up, then train the circle task (outputs in runs/circle/; pass options with ARGS="--epochs 10")
circle: $(STAMP)
	$(BIN)/tinygrad-edu circle $(ARGS)

## studio: set up, then start the studio, a local web page that trains while you watch (ARGS="--no-browser")
studio: $(STAMP)
	$(BIN)/tinygrad-edu studio $(ARGS)

## test: set up, then run the test suite (bounded Hypothesis profile)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-thorough: the slow, thorough run (many more Hypothesis examples)
test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: the benchmark suite, all tables in one run (installs the bench extra: micrograd, torch, jax; ~4 min)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python benchmarks/run.py

## docs: build the documentation site with MkDocs (installs the docs extra; fails on any warning)
docs: $(VENV)/.docs-stamp
	$(BIN)/mkdocs build --strict

$(VENV)/.docs-stamp: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,docs]'
	@touch $@

## notebooks: rebuild the tutorial's notebooks (tinygrad_edu/tutorial/) from the chapters in docs/
notebooks: $(STAMP)
	$(BIN)/python tools/notebooks.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
