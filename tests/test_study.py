"""lr_study.study: the runs of a study, each variant and seed checked before anything runs."""

from __future__ import annotations

import pytest

from lr_study import config as schema
from lr_study import study
from lr_study.errors import ConfigError


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
