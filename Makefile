# Two commands: `make run` (the main demo) and `make test` (the whole suite). Each sets itself
# up from nothing: it creates .venv and installs rayflow with what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test conformance conformance-unit lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  (echo "rayflow needs Python 3.10 or newer; set PYTHON=python3.x" && exit 1)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/rayflow run examples/identity_resolution/flow.py --records 200000

test: $(STAMP)
	@bash tools/ensure-chromium
	$(BIN)/ruff check rayflow cli tests examples benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Metaflow's own core test suite (../shared/conformance) against this checkout; fails below the
# floor in .ci/conformance-floor.
conformance: $(STAMP)
	bash .ci/conformance

# Metaflow's Runner-level unit suites (../shared/conformance/unit_run.sh): mutators, user step
# decorators, custom start and end, configs, spin; fails below the floor in .ci/unit-floor.
conformance-unit: $(STAMP)
	bash .ci/unit-conformance

lint: $(STAMP)
	$(BIN)/ruff check rayflow cli tests examples benchmarks

clean:
	rm -rf $(VENV) .rayflow out
