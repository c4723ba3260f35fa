# Two commands on a fresh machine with only Python:  make demo  and  make test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# The real datasets: ../shared/data when this checkout sits beside it, else the
# per-user cache, where `snn` fetches them on first use.
SNN_DATA_DIR ?= $(abspath $(wildcard ../shared/data))
export SNN_DATA_DIR

.PHONY: demo test bench clean browser debian

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# The seeds' own job: the cat vs non-cat network, every neuron a function invocation.
demo: $(VENV)/.installed
	$(BIN)/snn train examples/catvnoncat-4layer.json --granularity neuron

# What the tests take from Debian, as COMMAND:PACKAGE, installed with apt when missing:
# Chromium for the browser tests (never a browser download of Playwright's own),
# redis-server for the store tests, iproute2's ip for the Ray cluster's network namespace.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN := chromium:chromium redis-server:redis-server ip:iproute2
debian:
	@missing=""; for pair in $(DEBIAN); do command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

browser: debian

test: $(VENV)/.installed-test debian
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-test
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_runtime.py
	$(BIN)/python bench/bench_strategies.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_tune.py

clean:
	rm -rf $(VENV) runs .pytest_cache
