"""Equal epochs: the plan warns where a phase drops more than 5% of each epoch (N mod B of
N), and the default study's variants see within 5% of each other's examples."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from experiments import digits_study
from lr_study import config as schema
from lr_study.plan import build_plan
from lr_study.plan_table import MAX_DROPPED, dropped_warnings, format_plan
from lr_study.study import resolve_variant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = digits_study.N
OLD_INCREASE = ("{'name': 'multistep', 'batch_size': 8, 'boundaries': (10, 20, 30), "
                "'factor': 4}")


def _plans():
  config = digits_study.get_config()
  return {name: build_plan(resolve_variant(config, name), 1, N) for name in config.run_variants}


def test_the_default_studys_variants_see_within_5_percent_of_each_others_examples():
  seen = {name: plan.examples_seen for name, plan in _plans().items()}
  assert seen == {'decay': 57_280, 'hybrid': 56_560, 'increase': 56_560}
  assert max(seen.values()) <= (1 + MAX_DROPPED) * min(seen.values())


def test_no_phase_of_the_default_study_drops_over_5_percent_of_an_epoch():
  for name, plan in _plans().items():
    assert dropped_warnings(plan) == [], name
    assert max(p.dropped_per_epoch for p in plan.phases) <= MAX_DROPPED * N


def test_increases_last_batch_takes_4_updates_and_keeps_g_near_decays():
  plans = _plans()
  last = plans['increase'].phases[-1]
  assert (last.batch_size, last.updates_per_epoch, last.dropped_per_epoch) == (352, 4, 29)
  assert last.noise_scale == pytest.approx(1.541, abs=1e-3)
  assert plans['decay'].phases[-1].noise_scale == pytest.approx(1.396, abs=1e-3)
  assert plans['increase'].total_updates == 2380


def test_every_batch_of_the_default_study_splits_over_1_2_4_and_8_devices():
  config = digits_study.get_config()
  for name in config.run_variants:
    for devices in (1, 2, 4, 8):
      plan = build_plan(resolve_variant(config, name), devices, N)
      assert all(p.batch_size % devices == 0 for p in plan.phases)


def test_the_old_increase_schedule_is_warned_in_its_plan_table():
  config = resolve_variant(digits_study.get_config(), 'increase')
  config.batch_schedule = dict(name='multistep', batch_size=8, boundaries=(10, 20, 30), factor=4)
  plan = build_plan(config, 1, N)
  assert dropped_warnings(plan) == [
      'warning: epochs 30-40 at B = 512 drop 413 of the N = 1,437 examples of each epoch '
      '(28.7%, over 5%): runs compared at equal epochs see unequal data; choose a batch that '
      'divides N better']
  assert format_plan(plan).splitlines()[-1] == dropped_warnings(plan)[0]
  assert dropped_warnings(plan.to_json()) == dropped_warnings(plan)  # a run's plan.json


@pytest.mark.slow
def test_a_dry_run_of_the_old_increase_schedule_prints_the_warning(tmp_path):
  result = subprocess.run(
      [sys.executable, 'launch.py', '--config=experiments/digits_study.py:increase',
       f'--config.variants.increase.batch_schedule={OLD_INCREASE}', '--dry_run',
       f'--workdir={tmp_path}/plan'], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert ('warning: epochs 30-40 at B = 512 drop 413 of the N = 1,437 examples of each epoch '
          '(28.7%, over 5%)') in result.stdout
  default = subprocess.run(
      [sys.executable, 'launch.py', '--dry_run', f'--workdir={tmp_path}/default'], cwd=ROOT,
      capture_output=True, text=True, timeout=300)
  assert default.returncode == 0, default.stderr
  assert 'warning' not in default.stdout


def test_a_ramp_epoch_is_one_warning():
  config = schema.get_config()
  config.num_epochs = 4
  config.lr_schedule = dict(name='constant', init_value=0.1)
  config.batch_schedule = dict(name='linear_ramp', batch_size=64, final_batch_size=512,
                               over=1.0)
  plan = build_plan(config, 1, 1000)
  lines = dropped_warnings(plan)
  epochs = {p.start_epoch for p in plan.phases if p.dropped_per_epoch > MAX_DROPPED * 1000}
  assert len(lines) <= len(epochs) and lines
  assert all(line.startswith('warning: epoch') for line in lines)
