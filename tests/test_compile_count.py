"""The cold start: the default study's XLA compiles, counted by a ``jax.monitoring``
listener registered before anything else in the process, as ``python launch.py`` runs on
one device. Parameter init, evaluation and the noise measurement compile as whole
functions once per shape, the plan's schedules evaluate on the host without XLA, and
the seeds of a study share every compile."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from lr_study.schedules import build_lr_schedule, host_eval, registered_schedules
from lr_study.schedules.base import clock_fn, schedule_example
from lr_study.training import compile_count

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_COMPILES = 20  # the default study, one seed: 7 train steps, 13 others

# launch.py with a listener that counts the backend-compile events of the whole process.
COUNTING_LAUNCH = f'''
import runpy, sys
import jax
compiles = []
def listener(event, duration_secs, **kwargs):
  if event == {compile_count.EVENT!r}:
    compiles.append(kwargs.get('fun_name'))
jax.monitoring.register_event_duration_secs_listener(listener)
sys.argv = ['launch.py', *sys.argv[1:]]
try:
  runpy.run_path('launch.py', run_name='__main__')
finally:
  print(f'listener counted {{len(compiles)}} XLA compiles: {{sorted(compiles)}}')
'''


def _study(workdir, *flags: str) -> tuple[int, int, str]:
  """(compiles the listener counted, compiles the study's last line reports, stdout)."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one device, as a user
  result = subprocess.run([sys.executable, '-c', COUNTING_LAUNCH, f'--workdir={workdir}',
                           *flags], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  counted = int(re.search(r'listener counted (\d+) XLA compiles', result.stdout).group(1))
  reported = int(re.search(r'; (\d+) XLA compile\(s\) in this process so far',
                           result.stdout).group(1))
  return counted, reported, result.stdout


@pytest.mark.slow
def test_default_study_makes_at_most_20_compiles_and_more_seeds_add_none(tmp_path):
  # In 4 epochs (every LR and batch step at epochs 1, 2, 3): the same 7 shapes, less training.
  short = '--config.epochs_scale=0.1'
  one, one_reported, out = _study(tmp_path / 'one', '--config.seeds=0,', short)
  assert one <= MAX_COMPILES, out[-3000:]
  assert one_reported == one  # the runner's listener sees the whole process
  assert 'train step compiled 7 time(s) in all' in out
  three, three_reported, out = _study(tmp_path / 'three', short)  # its seeds 0, 1, 2
  print(f'XLA compiles of the default study: 1 seed {one}, 3 seeds {three}')
  assert three <= one, out[-3000:]
  assert three_reported == three
  assert ('train step compiled 7 time(s) in all, once per distinct shape of each variant for '
          'all 3 seed(s): decay 1, hybrid 2, increase 4') in out


def _compiles_during(fn) -> int:
  before = compile_count.count()
  fn()
  return compile_count.count() - before


def test_schedules_evaluate_on_the_host_without_compiling():
  for name in registered_schedules():
    config, span = schedule_example(name)
    schedule = build_lr_schedule(config)
    t = np.linspace(0, span, 7)
    assert _compiles_during(lambda: (schedule(t), schedule(span / 3))) == 0, name


def test_numpy_evaluation_matches_xla_in_float64_for_every_schedule():
  for name in registered_schedules():
    config, span = schedule_example(name)
    schedule = build_lr_schedule(config)
    t = np.linspace(0, span, 101)
    with jax.enable_x64(True):
      on_xla = np.asarray(jax.jit(schedule)(jax.numpy.asarray(t)))
    np.testing.assert_allclose(schedule(t), on_xla, rtol=1e-12, atol=1e-15, err_msg=name)


def test_a_schedule_outside_the_numpy_operations_is_evaluated_by_xla_in_float64():
  assert 'tanh' not in host_eval.NUMPY_OPS
  fn = clock_fn(lambda count: 0.1 * jax.numpy.tanh(count / 3))
  t = np.array([0.0, 1.0, 1.0 + 1e-12])  # the last two are one float32
  np.testing.assert_allclose(fn(t), 0.1 * np.tanh(t / 3), rtol=1e-15)
  assert fn(t).dtype == np.float64
