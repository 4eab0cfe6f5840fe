"""A run on TensorFlow's in-memory ``ram://`` filesystem, a stand-in for any filesystem
orbax cannot write itself: every run file goes there, checkpoints through a local
staging copy that is removed (``lr_study.training.checkpoint_mirror``), a stopped run
resumes from there exactly, and a damaged checkpoint costs one line as it does locally.
An unreachable ``gs://`` workdir is one line and status 2 before any compute."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tempfile
import uuid

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf  # registers ram://

from conftest import digits_run_config
from lr_study import config as schema
from lr_study.data.feeds import load_feed
from lr_study.runtime import run_files
from lr_study.runtime.preemption import Preempted, Preemption
from lr_study.runtime.tensorboard import EVENT_FILE_PATTERN
from lr_study.training import checkpoint, checkpoint_mirror
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import prepare_run
from lr_study.training.step import StepCompiler, init_train_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ram_dir() -> str:
  return f'ram://test_ram_workdir/{uuid.uuid4().hex}'


def _config(data_dir: str) -> ml_collections.ConfigDict:
  # 11 updates an epoch: a stop after a dispatch is mid-epoch.
  return digits_run_config(
      data_dir, model=dict(name='mlp', widths=(16,), batch_norm=False, dropout=0.0),
      lr_schedule=dict(name='constant', init_value=0.05),
      batch_schedule=dict(name='constant', batch_size=128), num_epochs=3,
      checkpoints_to_keep=schema.get_config().checkpoints_to_keep, updates_per_dispatch=4)


def _run(data_dir: str, run_dir: str, preemption: Preemption | None = None) -> dict:
  setup = prepare_run(_config(data_dir))
  feed = load_feed(setup.config.dataset, setup.spec)
  compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule, augment=False)
  return train_and_evaluate(setup, feed, run_dir, 0, compiler, preemption=preemption)


def _tree(run_dir: str) -> set[str]:
  """Every file under ``run_dir``, relative; event files by their pattern, the files of
  a checkpoint step by the step alone (orbax names them at random)."""
  found = set()
  for root, _, files in tf.io.gfile.walk(run_dir):
    for name in files:
      path = os.path.join(root[len(run_dir):].strip('/'), name)
      parts = path.split('/')
      if parts[0] == run_files.CHECKPOINTS:
        path = '/'.join(parts[:2])
      elif fnmatch.fnmatch(name, EVENT_FILE_PATTERN):
        path = EVENT_FILE_PATTERN
      found.add(path)
  return found


def _final_params(data_dir: str, run_dir: str) -> list[np.ndarray]:
  setup = prepare_run(_config(data_dir))
  template = init_train_state(setup.model, setup.tx, 0, setup.spec.image_shape)
  return jax.tree.leaves(checkpoint.restore(run_dir, template).state)


def _metrics(run_dir: str) -> list[dict]:
  return [{k: v for k, v in record.items() if k != 'wall_time'}
          for record in run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))]


@pytest.fixture(scope='module')
def local_run(digits_data_dir, tmp_path_factory) -> str:
  """An uninterrupted run on local disk."""
  run_dir = str(tmp_path_factory.mktemp('local_run'))
  _run(digits_data_dir, run_dir)
  return run_dir


@pytest.fixture
def staging(tmp_path, monkeypatch) -> str:
  """The directory the checkpoints' staging copies go in (``tempfile``'s), and the
  working directory, both empty."""
  for name in ('tmp', 'cwd'):
    (tmp_path / name).mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
  monkeypatch.chdir(tmp_path / 'cwd')
  return str(tmp_path)


def test_a_run_on_ram_writes_every_run_file_there_and_nothing_locally(
    digits_data_dir, local_run, staging):
  run_dir = _ram_dir()
  _run(digits_data_dir, run_dir)
  assert _tree(run_dir) == _tree(local_run)
  assert os.listdir(os.path.join(staging, 'tmp')) == []
  assert os.listdir(os.path.join(staging, 'cwd')) == []


def test_a_run_stopped_on_ram_resumes_to_the_uninterrupted_local_result(
    digits_data_dir, local_run, staging):
  del staging
  run_dir, stop = _ram_dir(), Preemption()
  stop.requested = True  # as a SIGTERM does: a checkpoint after the first dispatch, mid-epoch
  with pytest.raises(Preempted):
    _run(digits_data_dir, run_dir, stop)
  assert _metrics(run_dir) == []
  _run(digits_data_dir, run_dir)
  assert _metrics(run_dir) == _metrics(local_run)
  for resumed, straight in zip(_final_params(digits_data_dir, run_dir),
                               _final_params(digits_data_dir, local_run)):
    np.testing.assert_array_equal(resumed, straight)


# --- Checkpoints alone -----------------------------------------------------------------


def _state(step: int) -> dict:
  rng = np.random.default_rng(step)
  return {'step': np.asarray(step, np.int32),
          'kernel': rng.standard_normal((64, 32), np.float32)}


def _loop_state(step: int) -> dict:
  return {'loop': {'epoch': step, 'best': float('inf')}}


def _save(run_dir: str, *steps: int, keep: int = checkpoint.KEEP) -> None:
  for step in steps:
    checkpoint.save(run_dir, step, _state(step), _loop_state(step), keep)


def _steps(run_dir: str) -> list[str]:
  return sorted(tf.io.gfile.listdir(checkpoint.directory(run_dir)))


def _replace(path: str, data: bytes) -> None:
  tf.io.gfile.remove(path)  # ram:// 'wb' on an existing file appends
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(data)


def _garbage_loop_state(run_dir: str, step: int) -> None:
  path = os.path.join(checkpoint.directory(run_dir), str(step), 'loop_state', 'metadata')
  _replace(path, b'{"not": "the loop state"}')


def test_checkpoints_on_ram_round_trip_bit_exact():
  run_dir = _ram_dir()
  _save(run_dir, 3)
  restored = checkpoint.restore(run_dir, _state(0))
  assert restored.step == 3 and restored.loop_state == _loop_state(3)
  for got, want in zip(jax.tree.leaves(restored.state), jax.tree.leaves(_state(3))):
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_checkpoints_on_ram_keep_the_last_n_each_committed():
  run_dir = _ram_dir()
  _save(run_dir, 1, 2, 3, 4, keep=3)
  assert _steps(run_dir) == ['2', '3', '4']
  for step in _steps(run_dir):
    assert tf.io.gfile.exists(os.path.join(checkpoint.directory(run_dir), step,
                                           checkpoint_mirror.COMMIT))


def test_steps_whose_names_prefix_each_other_on_ram_are_copied_and_pruned_apart():
  # TF's ram:// lists step 11's first name among step 1's files.
  run_dir = _ram_dir()
  _save(run_dir, 1, 11)
  restored = checkpoint.restore(run_dir, _state(0))  # a new process copies both steps
  assert restored.step == 11 and restored.loop_state == _loop_state(11)
  _save(run_dir, 12, keep=2)
  assert _steps(run_dir) == ['11', '12']


def test_a_corrupt_checkpoint_on_ram_is_skipped_in_one_line_as_locally(tmp_path):
  notes = []
  for run_dir in (_ram_dir(), str(tmp_path)):
    _save(run_dir, 2, 3)
    _garbage_loop_state(run_dir, 3)
    restored = checkpoint.restore(run_dir, _state(0))
    assert restored.step == 2
    notes.append(restored.skipped.replace(checkpoint.directory(run_dir), 'DIR'))
  assert notes[0] == notes[1]
  assert '\n' not in notes[0] and notes[0].startswith('checkpoint step 3 (')


def test_an_uncommitted_step_on_ram_is_not_restored_and_the_next_save_deletes_it():
  run_dir = _ram_dir()
  _save(run_dir, 2, 3)
  tf.io.gfile.remove(os.path.join(checkpoint.directory(run_dir), '3', checkpoint_mirror.COMMIT))
  restored = checkpoint.restore(run_dir, _state(0))
  assert restored.step == 2 and restored.skipped is None
  _save(run_dir, 4)
  assert _steps(run_dir) == ['2', '4']


def test_a_save_on_ram_after_a_fallback_replaces_the_abandoned_later_steps():
  run_dir = _ram_dir()
  _save(run_dir, 2, 3, 4, keep=5)
  _save(run_dir, 3, keep=5)
  assert _steps(run_dir) == ['2', '3']
  assert checkpoint.restore(run_dir, _state(0)).loop_state == _loop_state(3)


# --- gs:// -------------------------------------------------------------------------------


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
