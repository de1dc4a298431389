# `make demo` and `make test` work on a fresh machine with only Python 3.11 and pip.
PYTHON ?= python3
VENV := .venv
CHECKOV_VENV := .venv-checkov
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test lint bench airflow clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(BIN)/pip install --quiet -e '.[aws,serve,airflow,test]'
	touch $@

# checkov pins boto3 1.35 and ships a module named hcl2, so it lives in a venv of its own.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	touch $@

demo: $(VENV)/.core
	$(BIN)/highlights demo --out $(DEMO_OUT)

test: $(VENV)/.dev $(CHECKOV_VENV)/.installed
	$(BIN)/ruff check highlights processing dags plugins tests benchmarks
	$(BIN)/python -m pytest

bench: $(VENV)/.core
	$(BIN)/python benchmarks/detect_speed.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(DEMO_OUT) .highlights-cache
