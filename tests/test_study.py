"""lr_study.study: the runs of a study, each variant and seed checked before anything runs."""

from __future__ import annotations

import os
import sys

import pytest

from conftest import CONFIG, succeeded
from lr_study import config as schema
from lr_study import study
from lr_study.errors import ConfigError
from lr_study.runtime import run_files


def _study(run_variants=('decay',), seeds=(0,)):
  config = schema.get_config()
  config.variants = study.decay_vs_batch_variants(config, (2,), 4, hybrid_factor=4)
  config.run_variants, config.seeds = run_variants, seeds
  return config


def test_the_runs_are_each_variant_for_each_seed():
  assert study.run_names(_study(('decay', 'increase'), (0, 7))) == [
      ('decay', 0), ('decay', 7), ('increase', 0), ('increase', 7)]


def test_a_comma_in_run_variants_is_refused_pointing_to_the_config_argument():
  with pytest.raises(ConfigError) as error:
    study.run_names(_study(('decay,increase',)))
  assert str(error.value) == ("run_variants holds 'decay,increase', one name with a comma: "
                              'select several variants as --config=FILE.py:decay,increase')


def test_the_largest_seed_the_train_step_takes_is_accepted():
  assert study.run_names(_study(seeds=(study.MAX_SEED,))) == [('decay', 2**31 - 1)]


@pytest.mark.parametrize('seed', [2**31, 99999999999999999999])
def test_a_seed_beyond_the_int32_range_is_refused_naming_it(seed):
  with pytest.raises(ConfigError, match=rf'^seeds must be at most 2,147,483,647 \(the train '
                                        rf'step takes a seed as an int32\), got {seed}$'):
    study.run_names(_study(seeds=(0, seed)))


# --- launch.py: a variant's override stays in its variant ---------------------------------------


@pytest.mark.slow
def test_an_override_of_one_variant_changes_that_variant_alone(launcher, tmp_path):
  plans = {}
  for name, extra in (('plain', []),
                      ('override', ['--config.variants.decay.lr_schedule.init_value=1e6'])):
    workdir = str(tmp_path / name)
    succeeded(launcher.run([sys.executable, 'launch.py', f'--config={CONFIG}', '--dry_run',
                            f'--workdir={workdir}', *extra]))
    plans[name] = {v: run_files.read_json(os.path.join(workdir, v, run_files.PLAN))
                   for v in ('decay', 'hybrid', 'increase')}
  for variant in ('hybrid', 'increase'):
    assert plans['override'][variant] == plans['plain'][variant]
    assert plans['override'][variant]['phases'][0]['learning_rate'] == 0.05
  decay = plans['override']['decay']['phases']
  assert [p['learning_rate'] for p in decay] == pytest.approx(
      [p['learning_rate'] * 1e6 / 0.05 for p in plans['plain']['decay']['phases']])
  assert decay[0]['learning_rate'] == 1e6
