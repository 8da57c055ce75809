# The two commands of the README, and the checks CI runs. Each target makes the
# virtual environment first if it is missing or older than pyproject.toml.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint

$(BIN)/order-engine: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded,load]'
	touch $@

run: $(BIN)/order-engine
	$(BIN)/order-engine serve

test: $(BIN)/order-engine
	$(BIN)/pytest

lint: $(BIN)/order-engine
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
