"""Cyclical learning rates (Smith 2017) and the LR range test's ramp."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_study.errors import ConfigError
from lr_study.schedules import build_lr_schedule

CLR = dict(base_lr=0.001, max_lr=0.006, step_size=2000)
ITERATIONS = np.arange(0.0, 30001.0, 13.0)


def smith(it, base, top, step, scale):
  """Smith 2017, §3.1: cycle = ⌊1 + it/(2·step)⌋, x = |it/step − 2·cycle + 1|."""
  cycle = np.floor(1 + it / (2 * step))
  x = np.abs(it / step - 2 * cycle + 1)
  return base + (top - base) * np.maximum(0, 1 - x) * scale(it, cycle)


def test_triangular_worked_example():
  schedule = build_lr_schedule(dict(name='triangular', **CLR))
  np.testing.assert_allclose(schedule(np.array([0, 1000, 2000, 3000, 4000])),
                             [0.001, 0.0035, 0.006, 0.0035, 0.001], rtol=1e-12)


def test_triangular2_worked_example():
  schedule = build_lr_schedule(dict(name='triangular2', **CLR))
  np.testing.assert_allclose(schedule(np.array([6000, 10000])), [0.0035, 0.00225], rtol=1e-12)


@pytest.mark.parametrize('name, params, scale', [
    ('triangular', {}, lambda it, cycle: 1.0),
    ('triangular2', {}, lambda it, cycle: 1 / 2**(cycle - 1)),
    ('exp_range', {'gamma': 0.99994}, lambda it, cycle: 0.99994**it),
])
@pytest.mark.optimized  # float32 as a run compiles it: within 2e-5 of the formula
@pytest.mark.parametrize('step_size', [2000, 750])
def test_cyclical_matches_smith_formula(name, params, scale, step_size):
  config = dict(name=name, base_lr=0.0005, max_lr=0.01, step_size=step_size, **params)
  schedule = build_lr_schedule(config)
  expected = smith(ITERATIONS, 0.0005, 0.01, step_size, scale)
  np.testing.assert_allclose(schedule(ITERATIONS), expected, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(jax.jit(schedule)(jnp.asarray(ITERATIONS))), expected,
                             rtol=2e-5)


def test_cyclical_runs_continuously_on_the_update_clock():
  schedule = build_lr_schedule(dict(name='exp_range', gamma=0.999, **CLR))
  assert (schedule.clock, schedule.stepping, schedule.init_value) == (
      'update', 'continuous', 0.001)


def test_lr_range_linear_ramp_spans_min_to_max_over_num_updates():
  schedule = build_lr_schedule(dict(name='lr_range', min_lr=0.01, max_lr=1.0, num_updates=101))
  t = np.arange(0.0, 150.0)
  np.testing.assert_allclose(schedule(t), 0.01 + 0.99 * np.minimum(t / 100, 1), rtol=1e-12)
  assert (schedule.clock, schedule.init_value, float(schedule(100))) == ('update', 0.01, 1.0)


def test_lr_range_exponential_ramp_is_geometric():
  schedule = build_lr_schedule(dict(name='lr_range', min_lr=1e-5, max_lr=1.0, num_updates=6,
                                    mode='exponential'))
  np.testing.assert_allclose(schedule(np.arange(8.0)),
                             [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.0, 1.0], rtol=1e-9)


@pytest.mark.parametrize('config, message', [
    (dict(name='triangular', base_lr=0.006, max_lr=0.001, step_size=2000),
     r'lr_schedule\.max_lr must be >= base_lr=0\.006, got 0\.001'),
    (dict(name='triangular', base_lr=-0.001, max_lr=0.006, step_size=2000),
     r'lr_schedule\.base_lr must be >= 0, got -0\.001'),
    (dict(name='triangular2', base_lr=0.001, max_lr=0.006, step_size=0),
     r'lr_schedule\.step_size must be > 0, got 0'),
    (dict(name='exp_range', gamma=1.01, **CLR), r'lr_schedule\.gamma must be in \(0, 1\]'),
    (dict(name='exp_range', gamma=0.0, **CLR), r'lr_schedule\.gamma must be > 0'),
    (dict(name='triangular', clock='epoch', **CLR), r"lr_schedule\.clock: unknown parameter"),
    (dict(name='lr_range', min_lr=0.1, max_lr=0.1, num_updates=100),
     r'lr_schedule\.max_lr must be > min_lr=0\.1, got 0\.1'),
    (dict(name='lr_range', min_lr=0.0, max_lr=1.0, num_updates=100, mode='exponential'),
     r'lr_schedule\.min_lr must be > 0 for the exponential ramp'),
    (dict(name='lr_range', min_lr=0.0, max_lr=1.0, num_updates=1),
     r'lr_schedule\.num_updates must be a whole number >= 2, got 1'),
    (dict(name='lr_range', min_lr=0.0, max_lr=1.0, num_updates=100, mode='log'),
     r"lr_schedule\.mode must be one of 'linear', 'exponential', got 'log'"),
])
def test_bad_cyclical_parameter_raises_config_error_naming_it(config, message):
  with pytest.raises(ConfigError, match=message):
    build_lr_schedule(config)
