PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install lock demo serve test lint bench clean

# Creates the venv and installs the locked stack (requirements.lock: every package pinned with
# its hashes, the whole closure, so --no-deps: a locked package that needs torch, accelerate,
# must not make pip resolve torch before it is installed by version), then torch by version
# (constraints.txt: the CPU wheel here, the CUDA build on a GPU machine), then the project
# itself without resolving anything; pip check then proves the set consistent. Re-runs when any
# of them changes.
$(STAMP): pyproject.toml requirements.lock constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

# Re-resolves requirements.lock from pyproject.toml (all extras) and constraints.txt: run it after
# changing a dependency, then `make install`; tests/test_lock.py fails while the two disagree.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links \
		--unsafe-package torch --unsafe-package distillery --strip-extras \
		--extra server --extra worker --extra dev -c constraints.txt \
		-o requirements.lock pyproject.toml

# Starts the service on the embedded default, runs examples/demo.json (MNIST-1D with a transfer
# set) through the HTTP API, downloads the student, prints the report and the distillation gain.
demo: $(STAMP)
	$(BIN)/distillery demo examples/demo.json --output demo-output

# Keeps the service running on the embedded default (http://127.0.0.1:8000).
serve: $(STAMP)
	$(BIN)/distillery serve

# The import contracts (pyproject's [tool.importlinter]: layers, the SDK's independence, no
# cycles) run before the tests. Two pytest-xdist workers: the tests that start real processes (tests/e2e, tests/faults) run
# one after another on one of them (they time leases and restarts), the rest on the other.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app worker distillery
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadgroup --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy app worker distillery
	$(BIN)/lint-imports

# The service benchmarks (benchmarks/README.md): status polls against a bare endpoint, submit
# to running, and a load of tiny jobs. Needs PostgreSQL and Redis on localhost, and wrk
# (apt-get install wrk; without it poll.py falls back to a slower Python load generator).
bench: $(STAMP)
	$(BIN)/python benchmarks/poll.py
	$(BIN)/python benchmarks/submit.py
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) distillery.db* artifacts work demo-output
