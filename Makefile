# Both targets do all set-up on a fresh machine: create the venv, install, then act.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SCENARIO ?= scenarios/smoke.yaml

.PHONY: run test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/losant-load run $(SCENARIO) --headless

test: $(STAMP)
	$(BIN)/ruff check harness tests bench locustfile.py
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/emulator.py
	$(BIN)/python bench/generator.py
	$(BIN)/python bench/recorder.py
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/ceiling.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/mqtt_broker.py
	$(BIN)/python bench/respect_rate.py

clean:
	rm -rf $(VENV) reports/*/
