PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo serve test lint clean

# Creates the venv and installs the project with its dev tools. Re-runs when pyproject changes.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Starts the service on the embedded default, runs examples/digits.json through the HTTP API,
# downloads the student and prints the report.
demo: $(STAMP)
	$(BIN)/distillery demo examples/digits.json --output demo-output

# Keeps the service running on the embedded default (http://127.0.0.1:8000).
serve: $(STAMP)
	$(BIN)/distillery serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app worker
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy app worker

clean:
	rm -rf $(VENV) distillery.db* artifacts work demo-output
