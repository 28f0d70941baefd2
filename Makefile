# Two commands do all set-up on a fresh machine (Python 3.11 + pip):
#   make quickstart   create .venv, install, run experiments/quickstart.toml, write figures
#   make test         create .venv with dev extras, run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: quickstart test test-slow test-chaos ui-check lint format docs bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP) $@

quickstart: $(STAMP)
	$(BIN)/harness run experiments/quickstart.toml

# The default suite (≤ 10 minutes on 2 cores): contract, smoke, statistical and end-to-end tests,
# in two processes (one per core of the reference 2-core machine; a file stays in one process).
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not chaos and not slow" tests

# The slow tier: statistical tests of the flows, longer fits, whole specs end to end, process
# pools, Ray and tracking servers (about 15 minutes on 2 cores); CI runs it after `make test`.
test-slow: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "slow and not chaos" tests

# Chaos tests (several drivers on one store or server, kills during store creation, a worker's
# memory over 30 fits): minutes each, so apart from the default suite; CI runs them too.
test-chaos: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m chaos tests

# The MLflow dashboard in headless Chromium (Debian package `chromium`): a short quickstart,
# `harness ui`, the experiment and a cell run opened; screenshots in results/ui_check/.
ui-check: $(DEV_STAMP)
	$(BIN)/python -m tests.ui_check

lint: $(DEV_STAMP)
	$(BIN)/ruff check harness tests benchmarks
	$(BIN)/ruff format --check harness tests benchmarks

format: $(DEV_STAMP)
	$(BIN)/ruff format harness tests benchmarks
	$(BIN)/ruff check --fix harness tests benchmarks

# The reference documentation (docs/, mkdocs.yml) as a site in site/.  --strict: a broken link
# or anchor, or a page missing from the nav, fails the build.
docs: $(DEV_STAMP)
	$(BIN)/python -m mkdocs build --strict --site-dir site

# Speed measurements (not tests): write docs/benchmarks.md.  Needs the bench extra (NumPyro).
bench: $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.speed
	$(BIN)/python -m benchmarks.metrics_cost
	$(BIN)/python -m benchmarks.report_speed

clean:
	rm -rf $(VENV) results site .pytest_cache
