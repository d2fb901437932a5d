# Two commands on a fresh machine:
#   make quickstart   set everything up, then run the main job
#   make test         set everything up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev

.PHONY: setup quickstart test test-slow lint benchmark-engine clean

# torch goes in first and alone, pinned: pip then takes the local CPU wheel instead of pulling
# several GB of CUDA packages for an unpinned or newer torch.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/python -c "import torch; print('torch', torch.__version__)"
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(BIN)/autoprune run pipelines/quickstart_digits.yaml

test: setup
	$(BIN)/python -m pytest -q

# ruff's lint and format check, and mypy (strict on the engine and the search): CI runs them before the tests
lint: setup
	$(BIN)/ruff check autoprune tests benchmarks scripts
	$(BIN)/ruff format --check autoprune tests benchmarks scripts
	$(BIN)/mypy

# exit status 5 means no test is marked slow: nothing to do, not a failure
test-slow: setup
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

benchmark-engine: setup
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) .pytest_cache
