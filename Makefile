# `make study` and `make test` each work on a fresh machine with Python 3.11:
# they create .venv if it is missing and install requirements.txt into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: study test dry-run figures schedules bench clean

$(INSTALLED): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

study: $(INSTALLED)
	$(PY) launch.py

test: $(INSTALLED)
	$(PY) -m pytest -q tests

dry-run: $(INSTALLED)
	$(PY) launch.py --dry_run

schedules: $(INSTALLED)
	$(PY) -m analysis.plot_schedules

bench: $(INSTALLED)
	$(PY) -m benchmarks.input_pipeline

clean:
	rm -rf runs .pytest_cache
