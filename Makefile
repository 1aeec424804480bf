# Two entry points: `make demo` (the local walk-through) and `make test` (the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow fuzz lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,cloud,ui]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mmm demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy core mmm_cli $(wildcard mmm_tui mmm_bot) bench tests/support

TEST_ENV := COMET_ERROR_TRACKING_ENABLE=false COMET_DISABLE_AUTO_LOGGING=1

test: lint typecheck
	$(TEST_ENV) $(BIN)/pytest -q -m "not slow"

# The crash matrix (a real worker SIGKILLed at every step boundary): longer than `make test`.
test-slow: $(STAMP)
	$(TEST_ENV) $(BIN)/pytest -q -m slow

# New fuzz examples each run, ten times the slow counts (the suite's own are fixed).
fuzz: $(STAMP)
	MMM_FUZZ_EXPLORE=1 $(TEST_ENV) $(BIN)/pytest -q -m slow --timeout=3600 tests/fuzz

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
