"""lr_study.training.controllers: a scripted manual LR change, made at its epoch's start, is
made once, even where the run is killed right after it and resumed from the checkpoint of
that very update."""

from __future__ import annotations

import os

import pytest

from conftest import CONFIG, ROOT, RUN, UPDATES_PER_EPOCH, committed_steps, log_lines, succeeded
from lr_study.runtime import run_files

pytestmark = pytest.mark.slow  # every test runs launch.py


SCRIPTED_CONFIG = '''
import importlib.util
import ml_collections
spec = importlib.util.spec_from_file_location('digits_study', {path!r})
digits_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(digits_study)

def get_config(arg=None):
  config = digits_study.get_config('decay')
  config.variants.decay.lr_schedule = ml_collections.ConfigDict(dict(
      name='manual', init_value=0.05, changes=((5, 0.01),)))
  return config
'''


def test_a_scripted_change_killed_right_after_it_is_made_is_recorded_once(launcher, tmp_path):
  """Scripted manual decay at epoch 5, whose start is also the update of the checkpoint
  saved at the end of epoch 5's predecessor: killed once the change is logged, the
  resumed run makes it again from that checkpoint."""
  config = tmp_path / 'scripted.py'
  config.write_text(SCRIPTED_CONFIG.format(path=os.path.join(ROOT, CONFIG)))
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir, config=str(config))
  process = launcher.start(args, str(tmp_path / 'killed'))
  process.wait_for(lambda: bool(log_lines(os.path.join(run_dir, run_files.EVENTS))),
                   'the scripted change logged')
  process.kill()
  assert committed_steps(run_dir)[-1] == 5 * UPDATES_PER_EPOCH
  succeeded(launcher.run(args))
  metrics = run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))
  assert [r['learning_rate'] for r in metrics] == pytest.approx([0.05] * 5 + [0.01] * 35)
  events = run_files.read_jsonl(os.path.join(run_dir, run_files.EVENTS))
  assert {(e['reason'], e['update'], e['learning_rate']) for e in events} == {
      ('scripted', 5 * UPDATES_PER_EPOCH, 0.01)}
  assert len(events) == 1, events
