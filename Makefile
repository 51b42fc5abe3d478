# The whole set-up: `make run` (try it) and `make test` (prove it). `make check` lints.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MAILHOST_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test check bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	MAILHOST_PROFILE=development $(PY) manage.py bootstrap
	exec env MAILHOST_PROFILE=development $(PY) manage.py runmailserver

test: $(VENV)/.installed
	MAILHOST_DATA_DIR=$(MAILHOST_DATA_DIR)/test $(PY) -m pytest $(PYTEST_ARGS)

check: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

clean:
	rm -rf $(VENV) var
