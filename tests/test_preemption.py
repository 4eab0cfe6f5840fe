"""lr_study.runtime.preemption: a SIGTERM stops a real launch.py run mid-epoch within
seconds, with one line and a checkpoint of that update, and the same command resumes it
to the uninterrupted result."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from conftest import (RUN, UPDATES_PER_EPOCH, assert_clean, assert_same_results, committed_steps,
                      last_update, one_line, run_results, succeeded)

pytestmark = pytest.mark.slow  # every test runs launch.py


def test_sigterm_mid_epoch_stops_in_seconds_with_one_line_and_resumes_exactly(
    launcher, reference_results, decay_state_template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  process = launcher.start(args, str(tmp_path / 'stopped'))
  mid_epoch_8 = 8 * UPDATES_PER_EPOCH + 60
  process.wait_for(lambda: last_update(run_dir) >= mid_epoch_8, f'update {mid_epoch_8}')
  sent = time.monotonic()
  process.proc.send_signal(signal.SIGTERM)
  status = process.wait(timeout=60)
  elapsed = time.monotonic() - sent
  assert status == 143, process.output()[-3000:]
  print(f'SIGTERM to exit: {elapsed:.2f} s')
  assert elapsed < 5, f'{elapsed:.1f} s from SIGTERM to exit'
  line = one_line(process.stderr())
  match = re.fullmatch(r'launch\.py: decay seed 0: stopped by SIGTERM after update (\d+), '
                       r'checkpoint saved; the same command resumes from it', line)
  assert match, line
  update = int(match.group(1))
  assert update % UPDATES_PER_EPOCH, f'update {update} ends an epoch: not mid-epoch'
  assert update in committed_steps(run_dir)
  assert not os.path.exists(os.path.join(run_dir, 'lock.json'))

  succeeded(launcher.run(args))
  assert_clean(run_dir)
  assert_same_results(run_results(run_dir, decay_state_template), reference_results)
