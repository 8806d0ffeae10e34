# Every target creates the virtual environment (.venv/) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-all pin-losses lint format app screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## create .venv and install voxtral_exp with its dev tools

run: setup  ## the main job: tiny Voxtral fine-tuned on the bundled sample speech (offline, CPU)
	$(PY) train.py experiment=quickstart

# Most tests run train.py in a subprocess; several pytest workers overlap their start-up
# (imports) with the others' compute. One math thread per process: four processes with torch's
# two threads each fight over 2 cores (tests/test_train.py + test_levers.py: 187 s -> 110 s).
# loadgroup: the tests that share a training run (xdist_group) go to one worker, which runs it once.
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadgroup

test: setup  ## the test suite (slow tests excluded; see test-all)
	$(PYTEST)

test-all: setup  ## every test, slow ones included
	$(PYTEST) -m ""

pin-losses: setup  ## rewrite tests/pinned_losses.json when a change is meant to move the training losses
	OMP_NUM_THREADS=1 $(PY) -m tests.pin_losses

lint: setup  ## ruff: lint and formatting check (the suite runs it too: tests/test_lint.py)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup  ## ruff: fix what it can and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

app: setup  ## the web app on http://127.0.0.1:7860 (record a dataset, train, try, publish)
	$(PY) -m voxtral_exp.app

screenshots: setup  ## README's app screenshots (docs/screenshots), from the browser test
	VOXTRAL_EXP_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/test_app.py -k browser

clean:  ## remove run outputs (keeps .venv)
	rm -rf outputs multirun/2*
