"""lr_study.config.check: the keys no builder owns, each bad value one line naming it."""

from __future__ import annotations

import pytest

from lr_study import config as schema
from lr_study.errors import ConfigError


def _checked(**overrides):
  config = schema.get_config()
  del config['variants'], config['run_variants']
  for key, value in overrides.items():
    config[key] = value
  schema.check(config)


def test_the_defaults_pass():
  _checked()


@pytest.mark.parametrize('learning_rate', [0.0, -0.1])
def test_a_learning_rate_that_is_not_positive_is_refused(learning_rate):
  with pytest.raises(ConfigError, match=rf'^learning_rate must be > 0, got {learning_rate}$'):
    _checked(learning_rate=learning_rate)


def test_num_epochs_beyond_what_a_plan_is_made_for_is_refused_before_planning():
  with pytest.raises(ConfigError, match=r'^num_epochs must be at most 100,000 \(a plan is made '
                                        r'epoch by epoch\), got 1,000,000,000$'):
    _checked(num_epochs=10**9)


def test_the_largest_num_epochs_passes():
  _checked(num_epochs=schema.MAX_EPOCHS)
