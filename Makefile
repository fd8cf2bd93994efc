# Two commands from a fresh clone: `make run` (set up, then start the daemon) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run poll demo demo-web serve test lint bench browser clean

run: $(STAMP)
	$(BIN)/aggregator run

poll: $(STAMP)
	$(BIN)/aggregator poll

# The demo's news, stamped as the hours before it runs, into a fresh demo.db that is kept for reading.
demo: $(STAMP)
	rm -f demo.db demo.db-wal demo.db-shm
	$(BIN)/aggregator --database sqlite:///demo.db demo

serve: $(STAMP)
	$(BIN)/aggregator serve

# The demo corpus kept in demo.db, then served: open http://127.0.0.1:8080/ (Ctrl-C stops it).
demo-web: demo
	$(BIN)/aggregator --database sqlite:///demo.db serve

test: $(STAMP) browser
	$(BIN)/ruff check aggregator tests scripts
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check aggregator tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench_cluster.py
	$(BIN)/python scripts/bench_web.py

# The browser tests drive Debian's Chromium; install it when missing and we may (root, or sudo without a
# password). Without it those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver for the browser tests"; \
	    $$SUDO apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null \
	    || echo "could not install chromium: the browser tests will skip"; \
	  else echo "no chromium and no way to install it: the browser tests will skip"; fi; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
