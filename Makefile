# GXO developer commands. `make run` and `make test` are the whole quickstart.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
GXO     = $(VENV)/bin/gxo
STAMP   = $(VENV)/.installed
# Test processes (pytest-xdist): most of the suite waits on daemons, servers and
# subprocesses, so two workers halve the wall time even on a 2-core machine. With two
# workers a timing-sensitive test may lose its CPU at the wrong moment: a failure is
# run again (at most twice; pytest reports each rerun as R and counts them).
JOBS   ?= 2
RERUNS ?= 2

.PHONY: run test test-fast lint format typecheck bench schema docs proto snapshots-update clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(GXO) run examples/quickstart.gxo.yaml

# The 25 slowest tests are listed at the end of `make test`: a CI run that takes longer
# than the local one says where the time went.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(JOBS) --reruns $(RERUNS) --reruns-delay 1 --durations=25 --cov=gxo --cov-report=term --cov-report=json:.coverage.json $(PYTEST_ARGS)
	$(PY) tools/coverage_gate.py .coverage.json

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check gxo tests bench tools
	$(VENV)/bin/ruff format --check gxo tests bench tools

format: $(STAMP)
	$(VENV)/bin/ruff format gxo tests bench tools
	$(VENV)/bin/ruff check --fix gxo tests bench tools

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run_all.py

schema: $(STAMP)
	$(PY) -m gxo.config.schema --write

docs: $(STAMP)
	$(PY) -m gxo.modules --write
	$(PY) -m gxo.modules.docs --write

# The daemon's gRPC stubs (committed; tests/daemon/test_proto_stubs.py fails when stale).
proto: $(STAMP)
	$(PY) -m gxo.daemon.protogen

snapshots-update: $(STAMP)
	$(PY) -m pytest tests/tui --snapshot-update

clean:
	rm -rf $(VENV) .pytest_cache .coverage .coverage.json htmlcov .hypothesis .mypy_cache .ruff_cache
