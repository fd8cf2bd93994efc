# Two commands from a fresh clone: `make run` (set up, then start the daemon) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run poll demo test lint bench clean

run: $(STAMP)
	$(BIN)/aggregator run

poll: $(STAMP)
	$(BIN)/aggregator poll

# The demo's news, stamped as the hours before it runs, into a fresh demo.db that is kept for reading.
demo: $(STAMP)
	rm -f demo.db demo.db-wal demo.db-shm
	$(BIN)/aggregator --database sqlite:///demo.db demo

test: $(STAMP)
	$(BIN)/ruff check aggregator tests scripts
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check aggregator tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench_cluster.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
