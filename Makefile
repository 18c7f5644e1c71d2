# Two set-up commands do everything on a fresh machine:
#   make demo   creates .venv, installs the service, and runs the paper's loop on the reference model
#   make test   creates .venv, installs the service with its test tools, and runs the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml setup.py app/measures/_kernel.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/iimm demo

# Two pytest workers (pytest-xdist), one test file each at a time: most service tests wait on
# the processes they start, so two files overlap well on two cores; a file's module-scoped
# stacks stay in one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/measures.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
