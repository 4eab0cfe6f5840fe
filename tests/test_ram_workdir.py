"""Workdirs where checkpoints cannot go. Orbax writes checkpoints on local paths and
``gs://`` only; a workdir on any other URL filesystem (TensorFlow's in-memory ``ram://``
here, a stand-in for ``s3://`` or ``hdfs://``) is one line and status 2 before any
compute, and a run directory there is refused in one line before anything is written.
An unreachable ``gs://`` workdir is one line and status 2 before any compute too."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
import tensorflow as tf  # registers ram://

from conftest import digits_run_config
from lr_study.data.feeds import load_feed
from lr_study.errors import ConfigError
from lr_study.training import checkpoint
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import prepare_run
from lr_study.training.step import StepCompiler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFUSED = "orbax writes checkpoints on local paths and gs:// only"


def _ram_dir() -> str:
  return f'ram://test_ram_workdir/{uuid.uuid4().hex}'


@pytest.mark.slow
def test_a_ram_workdir_is_one_line_and_status_2_before_any_compute(tmp_path):
  data_dir, workdir = str(tmp_path / 'tfds'), _ram_dir()
  result = subprocess.run(
      [sys.executable, 'launch.py', '--config=experiments/digits_study.py:decay',
       f'--config.dataset.data_dir={data_dir}', f'--workdir={workdir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  (line,) = result.stderr.strip().splitlines()
  assert line == f'launch.py: error: --workdir {workdir!r}: {REFUSED}'
  assert not os.path.exists(data_dir)


def test_a_run_directory_on_ram_is_refused_in_one_line_before_anything_is_written(
    digits_data_dir):
  setup = prepare_run(digits_run_config(digits_data_dir))
  compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule, augment=False)
  run_dir = _ram_dir()
  with pytest.raises(ConfigError) as error:
    train_and_evaluate(setup, load_feed(setup.config.dataset, setup.spec), run_dir, 0, compiler)
  assert str(error.value) == f'run directory {run_dir!r}: {REFUSED}'
  assert not tf.io.gfile.exists(run_dir)
  assert compiler.traces == 0


def test_checkpoints_on_ram_are_refused_in_one_line():
  run_dir = _ram_dir()
  tf.io.gfile.makedirs(checkpoint.directory(run_dir))
  for call in (lambda: checkpoint.Checkpoints(run_dir),
               lambda: checkpoint.restore(run_dir, {'w': np.zeros(2, np.float32)})):
    with pytest.raises(ConfigError) as error:
      call()
    assert str(error.value) == f'run directory {run_dir!r}: {REFUSED}'


# --- gs:// -------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_gs_workdir_is_one_line_and_status_2_before_any_compute(tmp_path):
  # Offline and at once: a fake token skips the credential lookup, and every request
  # goes to a closed local port instead of the network.
  env = {**os.environ, 'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'offline',
         'HTTPS_PROXY': 'http://127.0.0.1:9', 'https_proxy': 'http://127.0.0.1:9',
         'GCS_RETRY_CONFIG_MAX_RETRIES': '0', 'NO_PROXY': '', 'no_proxy': ''}
  data_dir = str(tmp_path / 'tfds')
  result = subprocess.run(
      [sys.executable, 'launch.py', '--config=experiments/digits_study.py:decay',
       f'--config.dataset.data_dir={data_dir}', '--workdir=gs://lr-study-no-such-bucket/x'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith("launch.py: error: --workdir 'gs://lr-study-no-such-bucket/x' is "
                         'not a usable directory: ')
  assert not os.path.exists(data_dir)
