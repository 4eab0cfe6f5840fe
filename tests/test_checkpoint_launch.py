"""lr_study.training.checkpoint under real launch.py runs: a corrupt latest checkpoint is
named in one line and the run resumes from the one before to the uninterrupted result;
where none is usable, one line and status 2, with nothing changed."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

from conftest import (TOTAL_UPDATES, assert_clean, assert_same_results, assert_strict_json,
                      committed_steps, copy_reference, refused_in_one_line, run_results, succeeded)

pytestmark = pytest.mark.slow  # every test runs launch.py


def _largest_array_file(step_dir: str) -> str:
  files = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(step_dir, 'state'))
           for n in names]
  return max(files, key=os.path.getsize)


def _truncate_arrays(step_dir: str) -> None:
  path = _largest_array_file(step_dir)
  os.truncate(path, os.path.getsize(path) // 2)


def _flip_a_bit_of_the_arrays(step_dir: str) -> None:
  path = _largest_array_file(step_dir)
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)[0]
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte ^ 0x08]))


def _garbage_loop_state(step_dir: str) -> None:
  path = os.path.join(step_dir, 'loop_state', 'metadata')
  size = os.path.getsize(path)
  with open(path, 'wb') as f:
    f.write(np.random.default_rng(0).bytes(size))


def _flip_a_digit_of_the_loop_state(step_dir: str) -> None:
  """Valid JSON still, with another update count: only the digest can tell."""
  path = os.path.join(step_dir, 'loop_state', 'metadata')
  with open(path) as f:
    text = f.read()
  changed = text.replace(f'"update": {TOTAL_UPDATES}', f'"update": {TOTAL_UPDATES + 1}')
  assert changed != text, text
  with open(path, 'w') as f:
    f.write(changed)


def _garbage_digest(step_dir: str) -> None:
  with open(os.path.join(step_dir, '_CHECKPOINT_METADATA'), 'wb') as f:
    f.write(b'{"custom_metadata": {"sha256": \x00\xff garbage')


def _dangling_symlink(step_dir: str) -> None:
  shutil.rmtree(step_dir)
  os.symlink(step_dir + '.gone', step_dir)


CORRUPTIONS = {
    'truncated_array_file': _truncate_arrays,
    'flipped_bit_in_the_arrays': _flip_a_bit_of_the_arrays,
    'garbage_loop_state': _garbage_loop_state,
    'loop_state_changed_but_valid_json': _flip_a_digit_of_the_loop_state,
    'garbage_checkpoint_metadata': _garbage_digest,
    'a_dangling_symlink_for_the_step': _dangling_symlink,  # replaced by the rerun's save
}


@pytest.mark.parametrize('corruption', list(CORRUPTIONS))
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    corruption, launcher, reference_workdir, reference_results, decay_state_template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = copy_reference(reference_workdir, workdir)
  previous, latest = committed_steps(run_dir)
  CORRUPTIONS[corruption](os.path.join(run_dir, 'checkpoints', str(latest)))

  result = succeeded(launcher.run(launcher.args(workdir)))
  output = result.stdout + result.stderr
  named = [line for line in output.splitlines() if 'unusable' in line]
  assert len(named) == 1, output
  assert 'Traceback' not in output and not re.search(r'^[EWF]\d{4} ', output, re.M), output
  assert f'step {latest}' in named[0] and f'resumed from step {previous}' in named[0]
  assert_clean(run_dir)
  assert_strict_json(workdir)
  assert_same_results(run_results(run_dir, decay_state_template), reference_results)


def test_every_checkpoint_corrupt_is_one_line_and_status_2_with_nothing_changed(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = copy_reference(reference_workdir, workdir)
  previous, latest = committed_steps(run_dir)
  _truncate_arrays(os.path.join(run_dir, 'checkpoints', str(latest)))
  _garbage_loop_state(os.path.join(run_dir, 'checkpoints', str(previous)))
  line = refused_in_one_line(launcher, launcher.args(workdir), workdir)
  assert line.startswith('launch.py: error: no usable checkpoint in '), line
  assert f'step {latest}' in line and f'step {previous}' in line
