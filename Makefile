# Two commands set up a fresh clone: `make run` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean browser

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m overt.demo $(ARGS)

# The portal's browser tests drive Debian's chromium through chromium-driver and check
# accessibility with axe-core from npm (tests/portal/test_browser.py); they skip without
# them, and fail under CI=true.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  $$(command -v sudo) apt-get install -y chromium chromium-driver || \
	  echo "make: chromium and chromium-driver not installed: the browser tests skip" >&2
	@test -f build/npm/node_modules/axe-core/axe.min.js || \
	  npm install --no-save --no-package-lock --prefix build/npm axe-core@4 || \
	  echo "make: axe-core not installed from npm: the accessibility test skips" >&2

test: $(STAMP) browser
	$(BIN)/python -m pytest

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .demo build *.egg-info
