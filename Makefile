# STN from scratch: `make lab` opens the course, `make test` runs every test,
# `make test-fast` the quick inner loop, `make lint` the linter and the formatter check,
# `make site` builds the course as a static website.
# Both create the virtual environment .venv on first use (needs Python >= 3.10).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup lab test test-fast test-classroom lint format release site site-fast site-nosolutions launch-cells clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt site/requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "the course needs Python >= 3.10, this is " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r site/requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# Open the course in JupyterLab, at the first student notebook (the file browser shows the repo).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: setup
	$(BIN)/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir="$(CURDIR)" \
	    --LabApp.default_url=/lab/tree/notebooks/01_affine_matrices/01_affine_matrices.ipynb

# Every test: stnlib's unit and oracle tests, doctests, the release checks, and every notebook
# in solutions/ and notebooks/ executed by nbval, all in fast mode (STN_FAST=1).
test: setup
	STN_FAST=1 $(BIN)/python -m pytest --nbval-lax -n auto --dist loadfile

# The inner loop (about a minute): stnlib's unit tests and doctests and tests/, without nbval, the
# nbgrader pipeline and the browser test (the tests marked slow).
test-fast: setup
	STN_FAST=1 $(BIN)/python -m pytest -n auto --dist loadfile -m "not slow" stnlib tests

# A whole class on a real JupyterHub (docs/classroom.md), alone and with its timings printed; needs
# root, useradd and node. STN_CLASS_SIZE=30 make test-classroom runs it with 30 students.
test-classroom: setup
	STN_FAST=1 $(BIN)/python -m pytest -n 0 -s tests/test_classroom.py

# ruff (configured in pyproject.toml): lint rules and the formatter, as a check; `make format` applies it.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate the student notebooks/ from the instructor solutions/ with nbgrader.
release: setup
	$(BIN)/python -m stnlib.release

# The course as a website (Sphinx + myst-nb; needs npm for MathJax and the widget manager, fetched
# once into build/site/npm/). Every notebook runs in the learner's full mode (cached in
# build/site/cache/: a rebuild after a prose edit runs nothing); open build/site/full/html/index.html.
site: setup
	$(BIN)/python site/build.py

# The same in fast mode (STN_FAST=1, as the browser test builds it; every page says so), and without
# any solution (what an instructor publishes to a graded class).
site-fast: setup
	$(BIN)/python site/build.py --fast

site-nosolutions: setup
	$(BIN)/python site/build.py --no-solutions

# The Colab / Binder cell and the setup cell of every notebook, from site/course.json; then the release.
launch-cells: setup
	$(BIN)/python site/launch.py
	$(BIN)/python -m stnlib.release

clean-venv:
	rm -rf $(VENV)
