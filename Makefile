# The two commands of the README. Both create .venv and install pinned dependencies on first use.
#   make quickstart   train the embedded Argonne-3-shaped quickstart model on CPU and print a sample
#   make test         run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: quickstart test install clean

$(STAMP): pyproject.toml ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned install resolves to a multi-GB CUDA build (environment.md P1).
	$(BIN)/python -m pip install --quiet -c ci/constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c ci/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/argonne-kit run recipes/quickstart.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) runs build dist *.egg-info
