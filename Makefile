PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo serve test lint bench clean

# Creates the venv and installs the project with its dev tools. Re-runs when pyproject changes.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Starts the service on the embedded default, runs examples/demo.json (MNIST-1D with a transfer
# set) through the HTTP API, downloads the student, prints the report and the distillation gain.
demo: $(STAMP)
	$(BIN)/distillery demo examples/demo.json --output demo-output

# Keeps the service running on the embedded default (http://127.0.0.1:8000).
serve: $(STAMP)
	$(BIN)/distillery serve

# Two pytest-xdist workers: the tests that start real processes (tests/e2e, tests/faults) run
# one after another on one of them (they time leases and restarts), the rest on the other.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app worker distillery
	$(BIN)/pytest -n 2 --dist loadgroup --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy app worker distillery

# The service benchmarks (benchmarks/README.md): status polls against a bare endpoint, submit
# to running, and a load of tiny jobs. Needs PostgreSQL and Redis on localhost, and wrk
# (apt-get install wrk; without it poll.py falls back to a slower Python load generator).
bench: $(STAMP)
	$(BIN)/python benchmarks/poll.py
	$(BIN)/python benchmarks/submit.py
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) distillery.db* artifacts work demo-output
