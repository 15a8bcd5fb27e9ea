# kmq: `make demo` runs the quantizer on bundled samples, `make test` runs linters and the suite.
# Everything installs into .venv from PyPI; a machine needs only Python 3.11+ with venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

export MPLBACKEND := Agg
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib

.PHONY: demo test lint typecheck bench install dev clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

## demo: compress the three sample photos that ship with kmq and print the results
demo: $(VENV)/.installed
	$(BIN)/kmq demo --output demo-output

## lint: ruff over the package, the tests and the benchmarks
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

## browser: Debian's chromium for the web page's browser tests (Playwright drives it; it never
## downloads browsers). Installed with apt when missing and we are root (or have sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium; \
	  else echo "chromium is missing and cannot be installed here: the browser tests will skip"; fi; }

## typecheck: mypy over src/kmq (settings in pyproject.toml)
typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

## test: linters and the type checker, then the whole suite (doctests included) on 2 workers
test: lint typecheck browser
	$(BIN)/pytest -n 2 --doctest-modules src/kmq tests

## bench: the quantizer against its peers (see benchmarks/README.md)
bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_quantize.py --markdown

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache .cache build src/*.egg-info
