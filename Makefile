# Every target that needs the virtualenv depends on its stamp, so a fresh clone needs only
# `make run` (OCR the samples) or `make test` (run the tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.yaml
# Test processes (pytest-xdist): most tests wait on a server, a subprocess or a grace period,
# so two processes on two cores halve the suite's time; `make test TEST_WORKERS=0` runs it in one.
TEST_WORKERS ?= 2

.PHONY: install run test serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m pipeline run $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

serve: $(STAMP)
	$(BIN)/python -m pipeline serve --port 8000 --engine rapidocr --token dev-token

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out .pytest_cache .bench
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
