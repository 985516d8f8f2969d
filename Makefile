# The two commands of the README. Both create .venv and install pinned dependencies on first use.
#   make quickstart   train the embedded Argonne-3-shaped quickstart model on CPU and print a sample
#   make test         lint, format and type checks, then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: quickstart test lint install clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: unpinned, pip resolves torch to a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/argonne-kit run recipes/quickstart.toml

# Everything the code is checked with; part of `make test`, so CI runs it.
lint: $(STAMP)
	$(BIN)/ruff check argonne_kit plugins tests benchmarks examples
	$(BIN)/ruff format --check argonne_kit plugins tests benchmarks examples
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) runs build dist *.egg-info
