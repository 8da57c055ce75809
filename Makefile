# The commands of the README, and the checks CI runs. Each target makes the virtual
# environment first if it is missing or older than pyproject.toml or constraints.txt,
# installing the versions pinned in constraints.txt.

# Any python3 of 3.11 or later: the first of these names that is one, unless PYTHON is
# given (make PYTHON=/opt/python3.12/bin/python3).
PYTHON_CANDIDATES := python3 python3.14 python3.13 python3.12 python3.11
ifndef PYTHON
PYTHON := $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell command -v $(p) >/dev/null 2>&1 \
	&& $(p) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $(p))))
endif
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,embedded,load

.PHONY: run dev test lint settings-docs constraints plots

$(BIN)/order-engine: pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "order-engine needs Python 3.11 or later, and found none" \
		"among $(PYTHON_CANDIDATES); install one, or name it: make PYTHON=/path/to/python3" >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

run: $(BIN)/order-engine
	$(BIN)/order-engine serve

# The server under aiohttp-devtools, restarted whenever a file of order_engine/ changes.
dev: $(BIN)/order-engine
	$(BIN)/order-engine dev

test: $(BIN)/order-engine
	$(BIN)/pytest --cov --cov-report=term

lint: $(BIN)/order-engine
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# .env.example and the table of docs/configuration.md, from order_engine/config.py.
settings-docs: $(BIN)/order-engine
	$(BIN)/order-engine settings-docs

# Pins every dependency of every extra anew (on Python 3.11, the oldest supported).
constraints: $(BIN)/order-engine
	$(BIN)/pip-compile --quiet --upgrade --all-extras --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --output-file constraints.txt pyproject.toml

# PNG charts of bench JSON lines: make plots BENCH=bench-results.jsonl
BENCH ?= bench-results.jsonl
plots: $(BIN)/order-engine
	$(BIN)/pip install --quiet -c constraints.txt -e '.[$(EXTRAS),plots]'
	$(BIN)/python loadtest/plot_bench.py $(BENCH) --out-dir docs/images
