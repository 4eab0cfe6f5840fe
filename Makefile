# `make study` and `make test` each work on a fresh machine with Python 3.11:
# they create .venv if it is missing and install requirements.txt into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Real MNIST for `make results`: the four official files here (offline), else TFDS downloads it.
MNIST_DIR ?= ../shared/data/mnist
MNIST := $(if $(wildcard $(MNIST_DIR)/train-images-idx3-ubyte.gz),--mnist_dir=$(MNIST_DIR))
RESULTS_FLAGS ?=

.PHONY: study test test-fast dry-run results figures schedules bench notebook clean

$(INSTALLED): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

study: $(INSTALLED)
	$(PY) launch.py

# Every test, in two pytest runs at once (tests/tiers.py): the tests on one CPU device, and
# the `multidevice` ones on 8 (XLA_FLAGS for that run alone), whose output follows the
# first's; the total count last. The first spreads its tests over PYTEST_WORKERS processes,
# the second over MULTIDEVICE_WORKERS (pytest-xdist; a trained run the tests share is made
# once for all of them, tests/conftest.py:once_per_run); 0 runs them in one. PYTEST_ARGS
# go to both runs; one left without a test by them (pytest's exit status 5) is no failure.
MULTIDEVICE_FLAGS := --xla_force_host_platform_device_count=8
PYTEST_WORKERS ?= auto
MULTIDEVICE_WORKERS ?= 0
PYTEST := $(PY) -m pytest -q
ONE_DEVICE_RUN = $(PYTEST) -n $(PYTEST_WORKERS) tests -m 'not multidevice' $(PYTEST_ARGS)
MULTIDEVICE_RUN = XLA_FLAGS=$(MULTIDEVICE_FLAGS) $(PYTEST) -n $(MULTIDEVICE_WORKERS) tests \
  -m multidevice $(PYTEST_ARGS)
test: $(INSTALLED)
	@counts=$$(mktemp) && eight_out=$$(mktemp) && export LR_STUDY_TEST_COUNTS=$$counts; \
	$(MULTIDEVICE_RUN) > $$eight_out 2>&1 & eight_pid=$$!; \
	echo "$(ONE_DEVICE_RUN)"; $(ONE_DEVICE_RUN); one=$$?; \
	wait $$eight_pid; eight=$$?; echo "$(MULTIDEVICE_RUN)"; cat $$eight_out; \
	echo "make test: $$($(PY) tests/tiers.py $$counts)"; rm -f $$counts $$eight_out; \
	case $$one$$eight in 00|05|50) ;; *) exit 1 ;; esac

# The unit tier: one CPU device, no slow or multidevice test; under 2 minutes on 2 cores.
test-fast: $(INSTALLED)
	$(PYTEST) -n $(PYTEST_WORKERS) tests -m 'not slow and not multidevice' $(PYTEST_ARGS)

dry-run: $(INSTALLED)
	$(PY) launch.py --dry_run

schedules: $(INSTALLED)
	$(PY) -m analysis.plot_schedules

# Every published number and figure, from fresh runs of the checked-out code
# (analysis.results): the default study (again with XLA compiling for AVX: the spread across
# instruction sets), the MNIST study and its batch ramp, both lectures with one seed (the LR
# range test first, its CLR bounds passed to the triangular run) and the trajectories. It
# writes docs/figures/, docs/results/*.json and *.md, and the tables between the results
# markers of README.md and docs/results.md. About 15 to 20 minutes on 2 quiet CPU cores
# (the older figures target, a subset, took 14 min 48 s); run it on a quiet machine, as
# wall times are published.
# RESULTS_FLAGS="--only=digits --epochs_scale=0.1 --seeds=0, --docs_dir=/tmp/d ..." tries
# the plumbing in a minute without touching docs/.
results: $(INSTALLED)
	$(PY) -m analysis.results $(MNIST) $(RESULTS_FLAGS)

figures: results

bench: $(INSTALLED)
	$(PY) -m benchmarks.throughput
	$(PY) -m benchmarks.input_pipeline

# notebooks/colab_tpu.ipynb end to end on CPU with nbclient: the digits study in 4 epochs,
# one seed, no installs, into runs/notebook_digits (again: it resumes and trains nothing);
# the executed copy is runs/notebook_digits/colab_tpu.ipynb.
notebook: $(INSTALLED)
	$(PY) tests/test_notebook.py --workdir=runs/notebook_digits

clean:
	rm -rf runs .pytest_cache
