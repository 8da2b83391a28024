# procman: `make demo` runs the demo tree, `make test` runs every check.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.procman-installed
# Every supported Python: .venv's runs lint, typecheck and pytest here, the
# others run the same in their own nox virtualenvs (noxfile.py, reused between runs).
PYTHONS := 3.11 3.12 3.13
VENV_PY = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

.PHONY: demo test lint typecheck pytest pythons eager bench bench-quick bench-pythons soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "procman needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/procman demo --duration $${DURATION:-30}

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check procman procman_metrics

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=300

# The suite on every supported Python but .venv's (on 3.12+ each also runs the
# eager-task subset); with CI set a missing interpreter fails, otherwise it is skipped.
pythons: $(STAMP)
	$(BIN)/nox -s $(foreach v,$(filter-out $(VENV_PY),$(PYTHONS)),tests-$(v))
	$(if $(filter-out 3.11,$(VENV_PY)),$(BIN)/nox -s tests-$(VENV_PY) -- eager)

# Only the eager-task subset (pytest --eager-tasks), on 3.12 and 3.13.
eager: $(STAMP)
	$(BIN)/nox -s tests-3.12 tests-3.13 -- eager

test: lint typecheck pytest pythons

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# Workload A on 3.11, 3.12 and 3.13 (eager variants on 3.12+), one venv each in
# .bench-venvs/ (created once); e.g. make bench-pythons ARGS='--sizes 1000'
bench-pythons: $(STAMP)
	$(BIN)/python -m benchmarks.pythons $(ARGS)

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m soak -p no:cacheprovider

clean:
	rm -rf $(VENV) .nox .mypy_cache .ruff_cache .pytest_cache .hypothesis
