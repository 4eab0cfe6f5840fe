"""The lecture experiments (Ng C2W2L09, Raschka STAT 453 L12.1): their dry-run plans."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import ml_collections
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NG = 'experiments/lecture_ng.py'
RASCHKA = 'experiments/lecture_raschka.py'
NG_VARIANTS = ['constant', 'inverse_time', 'power', 'inverse_sqrt', 'inverse_sqrt_update',
               'staircase', 'manual']
RASCHKA_VARIANTS = ['exponential', 'step', 'inverse_time', 'batch_64', 'batch_1024',
                    'triangular']


def _dry_run(config: str, workdir: str) -> dict[str, int]:
  """``launch.py --dry_run``'s last line: each variant's total updates."""
  result = subprocess.run(
      [sys.executable, 'launch.py', f'--config={config}', '--dry_run', f'--workdir={workdir}',
       '--config.dataset.data_dir=/nonexistent/tfds'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def _config(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location('lecture_config', os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _plan(path: str, variant: str):
  """The plan of one variant, as the dry run builds it (no data, one device)."""
  from lr_study import study  # pylint: disable=g-import-not-at-top
  from lr_study.training.setup import prepare_run  # pylint: disable=g-import-not-at-top
  return prepare_run(study.resolve_variant(_config(path), variant), 1).plan


@pytest.mark.slow
def test_ng_dry_run_plans_every_lecture_schedule(tmp_path):
  totals = _dry_run(NG, str(tmp_path))
  assert list(totals) == NG_VARIANTS
  assert set(totals.values()) == {20 * 937}  # same epochs, same batch: only α differs
  for variant in NG_VARIANTS:
    assert os.path.exists(tmp_path / variant / 'plan.json')


@pytest.mark.slow
def test_raschka_dry_run_plans_every_lecture_schedule(tmp_path):
  totals = _dry_run(RASCHKA, str(tmp_path))
  assert list(totals) == RASCHKA_VARIANTS
  assert totals['batch_64'] == 20 * 843 and totals['batch_1024'] == 20 * 52


def test_ng_inverse_time_lr_in_epochs_1_to_4_is_the_lecture_table():
  plan = _plan(NG, 'inverse_time')
  per_epoch = plan.phases[0].updates_per_epoch
  lrs = [plan.lr_at_update(epoch * per_epoch) for epoch in range(4)]  # Ng's epochs 1-4
  assert lrs == pytest.approx([0.1, 0.0667, 0.05, 0.04], abs=5e-5)
  assert plan.lr_at_update(per_epoch - 1) == pytest.approx(0.1)  # constant within an epoch


def test_ng_power_and_inverse_sqrt_follow_their_formulas_per_epoch():
  power, inverse_sqrt = _plan(NG, 'power'), _plan(NG, 'inverse_sqrt')
  per_epoch = power.phases[0].updates_per_epoch
  for epoch in range(4):
    assert power.lr_at_update(epoch * per_epoch) == pytest.approx(0.2 * 0.95 ** (epoch + 1))
    assert inverse_sqrt.lr_at_update(epoch * per_epoch) == pytest.approx(0.2 / (epoch + 1) ** 0.5)


def test_ng_inverse_sqrt_per_mini_batch_meets_the_per_epoch_curve_at_each_epoch_start():
  update, epoch = _plan(NG, 'inverse_sqrt_update'), _plan(NG, 'inverse_sqrt')
  per_epoch = update.phases[0].updates_per_epoch
  for e in range(4):
    assert update.lr_at_update(e * per_epoch) == pytest.approx(epoch.lr_at_update(e * per_epoch))
  assert update.lr_at_update(per_epoch // 2) < epoch.lr_at_update(per_epoch // 2)


def test_ng_staircase_halves_alpha_every_four_epochs():
  plan = _plan(NG, 'staircase')
  per_epoch = plan.phases[0].updates_per_epoch
  lrs = [plan.lr_at_update(e * per_epoch) for e in range(0, 20, 2)]
  assert lrs == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])


def test_raschka_triangular_cycles_between_the_range_tests_bounds():
  config = _config(RASCHKA)
  schedule = config.variants.triangular.lr_schedule
  plan = _plan(RASCHKA, 'triangular')
  assert plan.lr_at_update(0) == pytest.approx(schedule.base_lr)
  assert plan.lr_at_update(schedule.step_size) == pytest.approx(schedule.max_lr)
  assert plan.total_updates // (2 * schedule.step_size) == 4  # whole cycles


def test_raschka_range_test_logs_every_update_of_one_epoch():
  config = _config(RASCHKA, 'lr_range_test')
  assert config.run_variants == ('lr_range_test',)
  variant = config.variants.lr_range_test
  assert (variant.num_epochs, variant.train_log_every_updates) == (1, 1)
  assert variant.lr_schedule.num_updates == _plan(RASCHKA, 'lr_range_test').total_updates


def test_lecture_docstrings_open_with_the_command_that_runs_them():
  for path in (NG, RASCHKA):
    text = open(os.path.join(ROOT, path)).read()
    command = text.split('\n\n')[1].strip()
    assert command.startswith(f'python launch.py --config={path}')
