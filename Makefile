# `make study` and `make test` each work on a fresh machine with Python 3.11:
# they create .venv if it is missing and install requirements.txt into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Real MNIST for `make figures`: the four official files here (offline), else TFDS downloads it.
MNIST_DIR ?= ../shared/data/mnist
MNIST := $(if $(wildcard $(MNIST_DIR)/train-images-idx3-ubyte.gz),--config.dataset.manual_dir=$(MNIST_DIR),--config.dataset.download=True)
FIGURES := docs/figures

.PHONY: study test dry-run figures schedules bench notebook clean

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

# Every figure of docs/figures, from scratch: the default study, the MNIST study, the two
# lectures (one seed each) and the lecture's 2-D trajectories (README, Figures).
figures: $(INSTALLED)
	$(PY) launch.py --workdir=runs/figures/digits
	$(PY) -m analysis.figures --workdir=runs/figures/digits --out_dir=$(FIGURES)/digits
	$(PY) launch.py --config=experiments/mnist_decay_vs_batch.py $(MNIST) --workdir=runs/figures/mnist
	$(PY) -m analysis.figures --workdir=runs/figures/mnist --out_dir=$(FIGURES)/mnist
	$(PY) launch.py --config=experiments/lecture_ng.py $(MNIST) --config.seeds=0, --workdir=runs/figures/lecture_ng
	$(PY) -m analysis.figures --workdir=runs/figures/lecture_ng --out_dir=$(FIGURES)/lecture_ng
	$(PY) launch.py --config=experiments/lecture_raschka.py $(MNIST) --config.seeds=0, --workdir=runs/figures/lecture_raschka
	$(PY) -m analysis.figures --workdir=runs/figures/lecture_raschka --out_dir=$(FIGURES)/lecture_raschka
	$(PY) -m analysis.trajectory --out_dir=$(FIGURES)

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
