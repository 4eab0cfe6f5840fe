"""``lr_study.optax_schedule``: a run's LR as an optax.Schedule of the update count, equal
to what the train step used (a real run's train log) and to the plan."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lr_study
from experiments import cifar10_wrn, digits_study
from lr_study import study
from lr_study.errors import ConfigError
from lr_study.plan import build_plan


@pytest.mark.slow
def test_schedule_of_update_count_equals_the_lr_logged_after_each_update(
    default_study_update_by_update):
  _, workdir = default_study_update_by_update  # the default study, a train log line per update
  config = digits_study.get_config()
  for variant in ('decay', 'hybrid', 'increase'):
    with open(workdir / variant / 'seed_0' / 'train_log.jsonl') as f:
      log = [json.loads(line) for line in f]
    schedule = jax.jit(jax.vmap(lr_study.optax_schedule(study.resolve_variant(config, variant),
                                                        num_train_examples=1437)))
    updates = np.asarray([r['update'] for r in log])
    assert list(updates) == list(range(1, len(log) + 1))
    np.testing.assert_allclose(schedule(jnp.asarray(updates - 1)),
                               [r['learning_rate'] for r in log], rtol=1e-6)


@pytest.mark.parametrize('variant', ['decay', 'hybrid', 'increase', 'increased_initial_lr',
                                     'increased_momentum'])
def test_schedule_of_the_cifar_study_equals_its_plan_at_every_update(variant):
  config = study.resolve_variant(cifar10_wrn.get_config(), variant)
  plan = build_plan(config, num_devices=8, num_train_examples=50000)
  updates = np.arange(plan.total_updates)
  schedule = jax.jit(lr_study.optax_schedule(config, 50000, num_devices=8))
  np.testing.assert_allclose(schedule(jnp.asarray(updates)), plan.lr_at_update(updates), rtol=1e-6)


def test_a_dynamic_schedule_has_no_schedule_ahead_of_the_run():
  config = study.resolve_variant(digits_study.get_config(), 'decay')
  config.lr_schedule = dict(name='reduce_on_plateau', init_value=0.1, metric='train_loss')
  with pytest.raises(ConfigError, match=r"^lr_schedule 'reduce_on_plateau' is dynamic"):
    lr_study.optax_schedule(config, 1437)
