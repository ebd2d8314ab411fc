# make demo  — set everything up and replay a year of real meter data end to end
# make test  — the test suite against the machine's PostgreSQL, Redis and Mosquitto
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup clean

demo: $(VENV)/.installed
	$(BIN)/python -m iotwatt.demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

clean:
	rm -rf $(VENV) .demo .pytest_cache
