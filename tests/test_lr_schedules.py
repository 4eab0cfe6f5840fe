"""LR schedules: formulas, clocks, worked examples, jit, optax parity and config errors."""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lr_study.errors import ConfigError
from lr_study.schedules import (build_lr_schedule, plateau_controller, registered_schedules,
                                schedule_example)

EPOCHS = np.linspace(0.0, 200.0, 801)  # fractional epochs, integers included
UPDATES = np.arange(0.0, 20001.0, 37.0)

# (config, NumPy reference f(t) before any flooring, clock points)
FORMULAS = {
    'constant': (dict(name='constant', init_value=0.3), lambda t: 0.3 + 0 * t, EPOCHS),
    'exponential': (dict(name='exponential', init_value=0.5, k=0.1, stepping='continuous'),
                    lambda t: 0.5 * np.exp(-0.1 * t), EPOCHS),
    'exponential_offset': (
        dict(name='exponential', init_value=0.5, k=0.01, offset=1, stepping='continuous'),
        lambda t: 0.5 * np.exp(-0.01 * (t + 1)), EPOCHS),
    'power': (dict(name='power', init_value=0.2, gamma=0.95, stepping='continuous'),
              lambda t: 0.2 * 0.95**t, EPOCHS),
    'step': (dict(name='step', init_value=0.1, gamma=0.5, step_size=7, stepping='continuous'),
             lambda t: 0.1 * 0.5**np.floor(t / 7), EPOCHS),
    'multistep': (dict(name='multistep', init_value=0.1, boundaries=(60, 120, 160), factors=0.2),
                  lambda t: 0.1 * 0.2**np.searchsorted([60, 120, 160], t, side='right'), EPOCHS),
    'multistep_factors': (
        dict(name='multistep', init_value=1.0, boundaries=(10, 50), factors=(0.5, 0.3)),
        lambda t: np.where(t < 10, 1.0, np.where(t < 50, 0.5, 0.15)), EPOCHS),
    'multistep_values': (
        dict(name='multistep', init_value=1.0, boundaries=(10, 50), values=(0.4, 0.02)),
        lambda t: np.where(t < 10, 1.0, np.where(t < 50, 0.4, 0.02)), EPOCHS),
    'inverse_time': (
        dict(name='inverse_time', init_value=0.2, decay_rate=0.3, stepping='continuous'),
        lambda t: 0.2 / (1 + 0.3 * t), EPOCHS),
    'inverse_sqrt_epoch': (
        dict(name='inverse_sqrt', init_value=0.2, k=2.0, stepping='continuous'),
        lambda t: 0.2 * 2.0 / np.sqrt(t + 1), EPOCHS),
    'inverse_sqrt_update': (
        dict(name='inverse_sqrt', init_value=0.1, k=0.5, offset=10, clock='update'),
        lambda t: 0.1 * 0.5 / np.sqrt(t + 10), UPDATES),
    'cosine': (
        dict(name='cosine', init_value=0.1, decay_steps=150, alpha=0.1, exponent=2.0,
             stepping='continuous'),
        lambda t: 0.1 * (0.9 * (0.5 * (1 + np.cos(np.pi * np.minimum(t, 150) / 150)))**2 + 0.1),
        EPOCHS),
    'linear': (
        dict(name='linear', init_value=0.1, end_value=0.001, transition_steps=80,
             stepping='continuous'),
        lambda t: 0.1 + (0.001 - 0.1) * np.minimum(t, 80) / 80, EPOCHS),
    'staircase': (
        dict(name='staircase', step=15,
             schedule=dict(name='exponential', init_value=0.5, k=0.02, stepping='continuous')),
        lambda t: 0.5 * np.exp(-0.02 * 15 * np.floor(t / 15)), EPOCHS),
    'warmup': (
        dict(name='warmup', length=10, start_value=0.01,
             schedule=dict(name='cosine', init_value=0.1, decay_steps=100, stepping='continuous')),
        lambda t: np.where(t < 10, 0.01 + 0.09 * t / 10,
                           0.05 * (1 + np.cos(np.pi * np.minimum(np.maximum(t - 10, 0), 100)
                                              / 100))), EPOCHS),
    'warmup_no_shift': (
        dict(name='warmup', length=5, shift=False,
             schedule=dict(name='multistep', init_value=0.4, boundaries=(30, 60, 80))),
        lambda t: np.where(t < 5, 0.4 * t / 5,
                           0.4 * 0.1**np.searchsorted([30, 60, 80], t, side='right')), EPOCHS),
    'reduce_on_plateau': (dict(name='reduce_on_plateau', init_value=0.05),
                          lambda t: 0.05 + 0 * t, EPOCHS),
    'manual': (dict(name='manual', init_value=0.05), lambda t: 0.05 + 0 * t, EPOCHS),
}


@pytest.mark.parametrize('case', sorted(FORMULAS))
def test_schedule_matches_its_formula(case):
  config, reference, t = FORMULAS[case]
  np.testing.assert_allclose(build_lr_schedule(config)(t), reference(t), rtol=1e-12, atol=0)


def test_every_registered_schedule_has_a_formula_test():
  tested = {config['name'] for config, _, _ in FORMULAS.values()}
  cyclical = {'triangular', 'triangular2', 'exp_range', 'lr_range'}  # test_cyclical_schedules
  assert tested | cyclical == set(registered_schedules())


@pytest.mark.parametrize('name', registered_schedules())
def test_jit_evaluation_equals_numpy_evaluation(name):
  config, span = schedule_example(name)
  schedule = build_lr_schedule(config)
  t = np.linspace(0.0, span, 257).astype(np.float32)
  on_device = jax.jit(jax.vmap(schedule))(jnp.asarray(t))
  np.testing.assert_allclose(np.asarray(on_device), schedule(t.astype(float)), rtol=2e-5,
                             atol=1e-9)


def test_schedule_takes_a_traced_int32_update_counter():
  schedule = build_lr_schedule(dict(name='inverse_sqrt', init_value=0.1, clock='update'))
  lr = jax.jit(schedule)(jnp.int32(99))
  assert lr.dtype == jnp.float32
  np.testing.assert_allclose(float(lr), 0.1 / 10, rtol=1e-6)


def test_schedule_returns_a_scalar_for_a_python_float():
  for name in registered_schedules():
    lr = build_lr_schedule(schedule_example(name)[0])(1.5)
    assert np.ndim(lr) == 0 and isinstance(float(lr), float), name


def test_per_epoch_stepping_uses_floor():
  per_epoch = build_lr_schedule(dict(name='exponential', init_value=0.5, k=0.1))
  continuous = build_lr_schedule(dict(name='exponential', init_value=0.5, k=0.1,
                                      stepping='continuous'))
  assert per_epoch.stepping == 'per_epoch'
  t = np.array([0.0, 0.3, 0.999, 1.0, 2.7, 41.99])
  np.testing.assert_array_equal(per_epoch(t), continuous(np.floor(t)))
  assert float(jax.jit(per_epoch)(2.7)) == pytest.approx(float(continuous(2.0)), rel=1e-6)


def test_smooth_formulas_default_to_per_epoch_on_the_epoch_clock_only():
  on_epochs = build_lr_schedule(dict(name='power', init_value=0.1, gamma=0.9))
  on_updates = build_lr_schedule(dict(name='power', init_value=0.1, gamma=0.9, clock='update'))
  assert (on_epochs.stepping, on_updates.stepping) == ('per_epoch', 'continuous')
  assert on_epochs.params['stepping'] == 'per_epoch'


def test_ng_inverse_time_worked_example():
  """α0 = 0.2, decay_rate = 1: 0.1, 0.0667, 0.05, 0.04 in Ng's epochs 1 to 4."""
  ng = build_lr_schedule(dict(name='inverse_time', init_value=0.2, decay_rate=1.0, offset=1))
  np.testing.assert_allclose(ng(np.arange(4) + 0.5), [0.1, 0.0667, 0.05, 0.04], atol=5e-5)


def test_power_decay_worked_example():
  """0.95^e · 0.2: 0.2, 0.19, 0.1805, 0.17147 for e = 0 to 3 (PyTorch ExponentialLR)."""
  schedule = build_lr_schedule(dict(name='power', init_value=0.2, gamma=0.95))
  np.testing.assert_allclose(schedule(np.arange(4) + 0.5), [0.2, 0.19, 0.1805, 0.17147],
                             atol=5e-6)


def test_ng_inverse_sqrt_counts_epochs_from_one():
  schedule = build_lr_schedule(dict(name='inverse_sqrt', init_value=0.2, k=1.0))
  np.testing.assert_allclose(schedule(np.array([0.5, 1.5, 3.5])), 0.2 / np.sqrt([1, 2, 4]))


def test_multistep_paper_divides_by_five_at_60_120_160():
  schedule = build_lr_schedule(dict(name='multistep', init_value=0.1, boundaries=(60, 120, 160),
                                    factors=0.2))
  np.testing.assert_allclose(schedule(np.array([0, 59.99, 60, 119.5, 120, 160, 199])),
                             [0.1, 0.1, 0.02, 0.02, 0.004, 0.0008, 0.0008])
  assert schedule.boundaries == (60.0, 120.0, 160.0)


OPTAX_BACKED = {  # config, the optax functions it must call (the first one with t itself)
    'constant': (dict(name='constant', init_value=0.3), ('constant_schedule',)),
    'exponential': (dict(name='exponential', init_value=0.5, k=0.1, offset=1,
                         stepping='continuous'), ('exponential_decay',)),
    'power': (dict(name='power', init_value=0.2, gamma=0.95, stepping='continuous'),
              ('exponential_decay',)),
    'step': (dict(name='step', init_value=0.1, gamma=0.5, step_size=7, stepping='continuous'),
             ('exponential_decay',)),
    'multistep': (dict(name='multistep', init_value=0.1, boundaries=(2.5, 60)),
                  ('piecewise_constant_schedule',)),
    'multistep_values': (dict(name='multistep', init_value=0.1, boundaries=(2.5, 60),
                              values=(0.05, 0.01)), ('join_schedules', 'constant_schedule')),
    'cosine': (dict(name='cosine', init_value=0.1, decay_steps=50, stepping='continuous'),
               ('cosine_decay_schedule',)),
    'linear': (dict(name='linear', init_value=0.1, end_value=0.0, transition_steps=50,
                    stepping='continuous'), ('linear_schedule',)),
    'warmup': (dict(name='warmup', length=5, schedule=dict(name='constant', init_value=0.1)),
               ('join_schedules', 'linear_schedule')),
    'warmup_no_shift': (dict(name='warmup', length=5, shift=False,
                             schedule=dict(name='constant', init_value=0.1)),
                        ('join_schedules', 'linear_schedule')),
    'lr_range_exponential': (dict(name='lr_range', min_lr=1e-4, max_lr=1.0, num_updates=100,
                                  mode='exponential'), ('exponential_decay',)),
}


@pytest.mark.parametrize('case', sorted(OPTAX_BACKED))
def test_schedules_that_optax_has_call_optax_functions(monkeypatch, case):
  """Each optax function is spied on: the schedule's LR comes from what it returned,
  evaluated at the clock value, on the host (traced in float64, ``host_eval``) and under
  jit."""
  config, functions = OPTAX_BACKED[case]
  seen = {name: [] for name in functions}

  def spy(real, counts):
    def factory(*args, **kwargs):
      schedule = real(*args, **kwargs)

      def spied(count):
        counts.append(count)
        return schedule(count)

      return spied
    return factory

  for name in functions:
    monkeypatch.setattr(optax, name, spy(getattr(optax, name), seen[name]))
  schedule = build_lr_schedule(config)
  t = np.array([0.0, 2.5, 7.0, 61.0])
  for counts in seen.values():
    counts.clear()
  expected = schedule(t)
  assert all(seen.values()), seen
  first = seen[functions[0]][0]
  assert (first.shape, first.dtype) == (t.shape, np.float64)
  for counts in seen.values():
    counts.clear()
  np.testing.assert_allclose(np.asarray(jax.jit(schedule)(jnp.asarray(t))), expected, rtol=1e-5,
                             atol=1e-8)
  assert all(seen.values()), seen


def test_multistep_values_may_drop_to_zero_and_rise_again():
  """A zero level then a positive one: no scale from one to the other exists, so this is
  not ``piecewise_constant_schedule`` (nan at every count) but ``join_schedules``."""
  schedule = build_lr_schedule(dict(name='multistep', init_value=0.1, boundaries=(10, 20),
                                    values=(0.0, 0.01)))
  t = np.array([0.0, 9.9, 10.0, 19.9, 20.0, 30.0])
  np.testing.assert_array_equal(schedule(t), [0.1, 0.1, 0.0, 0.0, 0.01, 0.01])
  np.testing.assert_allclose(np.asarray(jax.jit(schedule)(jnp.asarray(t))), schedule(t),
                             rtol=1e-6)


def test_power_with_gamma_near_one_keeps_its_precision_under_jit():
  """0.99994 rounded to float32 would be 3.5e-4 off at 16,000 updates; as a half-life it
  is not."""
  schedule = build_lr_schedule(dict(name='power', init_value=1.0, gamma=0.99994, clock='update'))
  t = np.arange(0.0, 16001.0, 500.0)
  np.testing.assert_allclose(np.asarray(jax.jit(schedule)(jnp.asarray(t, jnp.float32))),
                             0.99994**t, rtol=2e-6)


def test_multistep_matches_optax_piecewise_constant_schedule():
  """Both jump at t = b (``count >= b``); Keras's PiecewiseConstantDecay jumps at b + 1."""
  boundaries, scales = (3, 10, 11, 250), (0.5, 0.2, 3.0, 0.1)
  ours = build_lr_schedule(dict(name='multistep', init_value=0.8, boundaries=boundaries,
                                factors=scales, clock='update'))
  theirs = optax.piecewise_constant_schedule(0.8, dict(zip(boundaries, scales)))
  counts = np.arange(0, 300)
  np.testing.assert_allclose(ours(counts), np.asarray(theirs(jnp.asarray(counts))), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.jit(ours)(jnp.asarray(counts))),
                             np.asarray(theirs(jnp.asarray(counts))), rtol=1e-6)


def test_cosine_matches_optax_cosine_decay_schedule():
  ours = build_lr_schedule(dict(name='cosine', init_value=0.3, decay_steps=1000, alpha=0.05,
                                exponent=1.5, clock='update'))
  theirs = optax.cosine_decay_schedule(0.3, 1000, alpha=0.05, exponent=1.5)
  counts = np.arange(0, 1500, 7)
  np.testing.assert_allclose(ours(counts), np.asarray(theirs(jnp.asarray(counts))), rtol=1e-5)


def test_step_matches_optax_staircase_exponential_decay():
  ours = build_lr_schedule(dict(name='step', init_value=0.5, gamma=0.7, step_size=40,
                                clock='update'))
  theirs = optax.exponential_decay(0.5, transition_steps=40, decay_rate=0.7, staircase=True)
  counts = np.arange(0, 500, 3)
  np.testing.assert_allclose(ours(counts), np.asarray(theirs(jnp.asarray(counts))), rtol=1e-5)


def test_warmup_matches_optax_warmup_cosine_decay_schedule():
  ours = build_lr_schedule(dict(name='warmup', length=50, schedule=dict(
      name='cosine', init_value=0.2, decay_steps=150, alpha=0.1, clock='update')))
  theirs = optax.warmup_cosine_decay_schedule(0.0, 0.2, warmup_steps=50, decay_steps=200,
                                              end_value=0.02)
  counts = np.arange(0, 260)
  np.testing.assert_allclose(ours(counts), np.asarray(theirs(jnp.asarray(counts))), rtol=1e-5,
                             atol=1e-8)


def test_warmup_moves_the_inner_boundaries_when_it_shifts():
  inner = dict(name='multistep', init_value=0.1, boundaries=(30, 60))
  shifted = build_lr_schedule(dict(name='warmup', length=5, schedule=inner))
  overlaid = build_lr_schedule(dict(name='warmup', length=5, shift=False, schedule=inner))
  assert (shifted.boundaries, overlaid.boundaries) == ((35.0, 65.0), (30.0, 60.0))
  assert (shifted.clock, shifted.init_value) == ('epoch', 0.0)


def test_staircase_rounds_the_inner_boundaries_up_to_its_steps():
  schedule = build_lr_schedule(dict(name='staircase', step=4, schedule=dict(
      name='multistep', init_value=0.1, boundaries=(6, 8, 9))))
  assert schedule.boundaries == (8.0, 12.0)
  np.testing.assert_allclose(schedule(np.array([7.9, 8, 11.9, 12])), [0.1, 0.001, 0.001, 0.0001])


def test_staircase_keeps_the_inner_clock():
  schedule = build_lr_schedule(dict(name='staircase', step=100, schedule=dict(
      name='inverse_time', init_value=1.0, decay_rate=0.01, clock='update')))
  assert schedule.clock == 'update'
  np.testing.assert_allclose(schedule(np.array([0, 99, 100, 250])), [1, 1, 0.5, 1 / 3])


def test_reduce_on_plateau_fills_its_parameters_and_the_mode_of_its_metric():
  schedule = build_lr_schedule(ml_collections.ConfigDict(dict(
      name='reduce_on_plateau', init_value=0.1, metric='test_accuracy', patience=3)))
  assert schedule.dynamic == 'reduce_on_plateau'
  assert schedule.params == dict(init_value=0.1, metric='test_accuracy', mode='max', factor=0.1,
                                 patience=3, threshold=1e-4, threshold_mode='rel', cooldown=0,
                                 min_lr=0.0)
  controller = plateau_controller(schedule)
  assert (controller.detector.mode, controller.detector.patience, controller.factor) == (
      'max', 3, 0.1)


def test_manual_is_a_dynamic_constant():
  schedule = build_lr_schedule(dict(name='manual', init_value=0.02))
  assert (schedule.dynamic, schedule.init_value, float(schedule(37.5))) == ('manual', 0.02, 0.02)


def test_init_value_is_the_lr_at_zero():
  for name in registered_schedules():
    schedule = build_lr_schedule(schedule_example(name)[0])
    assert schedule.init_value == pytest.approx(float(schedule(0.0))), name


@pytest.mark.parametrize('config, message', [
    (dict(name='cosine_annealing', init_value=0.1), r'lr_schedule\.name: unknown schedule '
     r"'cosine_annealing' \(known: constant, cosine,"),
    (dict(init_value=0.1), r'lr_schedule\.name: unknown schedule None'),
    (dict(name='constant', init_value=0.1, gamma=0.5),
     r"lr_schedule\.gamma: unknown parameter of schedule 'constant'"),
    (dict(name='step', init_value=0.1, gamma=0.5), r'lr_schedule\.step_size: missing'),
    (dict(name='constant', init_value=-0.1), r'lr_schedule\.init_value must be >= 0, got -0\.1'),
    (dict(name='constant', init_value='fast'), r"init_value must be a number, got 'fast'"),
    (dict(name='constant', init_value=float('nan')), r'init_value must be a finite number'),
    (dict(name='constant', init_value=0.1, clock='epochs'),
     r"lr_schedule\.clock must be one of 'epoch', 'update', got 'epochs'"),
    (dict(name='power', init_value=0.1, gamma=0.9, clock='update', stepping='per_epoch'),
     r"lr_schedule\.stepping 'per_epoch' needs clock 'epoch'"),
    (dict(name='power', init_value=0.1, gamma=0.9, stepping='each'),
     r"lr_schedule\.stepping must be one of"),
    (dict(name='multistep', init_value=0.1, boundaries=(60, 30)),
     r'lr_schedule\.boundaries must increase, got \(60, 30\)'),
    (dict(name='multistep', init_value=0.1, boundaries=(60, 60)), r'boundaries must increase'),
    (dict(name='multistep', init_value=0.1, boundaries=(-1, 3)), r'boundaries must be >= 0'),
    (dict(name='multistep', init_value=0.1, boundaries=60), r'boundaries must be a sequence'),
    (dict(name='multistep', init_value=0.1, boundaries=(60,), factors=0.0),
     r'lr_schedule\.factors must be > 0, got 0\.0'),
    (dict(name='multistep', init_value=0.1, boundaries=(60, 90), factors=(0.1,)),
     r'factors must give one factor per boundary \(2\)'),
    (dict(name='multistep', init_value=0.1, boundaries=(60,), values=(-0.1,)),
     r'lr_schedule\.values must be >= 0, got -0\.1'),
    (dict(name='multistep', init_value=0.1, boundaries=(60,), values=(0.1, 0.01)),
     r'values must give one LR per boundary \(1\)'),
    (dict(name='multistep', init_value=0.1, boundaries=(60,), values=(0.1,), factors=0.5),
     r'lr_schedule\.factors: give factors or values, not both'),
    (dict(name='power', init_value=0.1, gamma=-0.95), r'lr_schedule\.gamma must be > 0'),
    (dict(name='step', init_value=0.1, gamma=0.5, step_size=0),
     r'lr_schedule\.step_size must be > 0, got 0'),
    (dict(name='exponential', init_value=0.1, k=-0.1), r'lr_schedule\.k must be >= 0'),
    (dict(name='exponential', init_value=0.1, k=0.1, offset=-1), r'offset must be >= 0'),
    (dict(name='inverse_time', init_value=0.1, decay_rate=-1), r'decay_rate must be >= 0'),
    (dict(name='inverse_sqrt', init_value=0.1, offset=0), r'lr_schedule\.offset must be > 0'),
    (dict(name='cosine', init_value=0.1, decay_steps=0), r'decay_steps must be > 0, got 0'),
    (dict(name='cosine', init_value=0.1, decay_steps=10, alpha=1.5), r'alpha must be in \[0, 1\]'),
    (dict(name='linear', init_value=0.1, end_value=0.0, transition_steps=0),
     r'lr_schedule\.transition_steps must be > 0, got 0'),
    (dict(name='linear', init_value=0.1, end_value=-0.01, transition_steps=10),
     r'lr_schedule\.end_value must be >= 0, got -0\.01'),
    (dict(name='staircase', step=0, schedule=dict(name='constant', init_value=0.1)),
     r'lr_schedule\.step must be > 0, got 0'),
    (dict(name='staircase', step=5, schedule=dict(name='constant', init_value=-1)),
     r'lr_schedule\.schedule\.init_value must be >= 0, got -1'),
    (dict(name='staircase', step=5, schedule=0.1), r'schedule must be a schedule config'),
    (dict(name='warmup', length=0, schedule=dict(name='constant', init_value=0.1)),
     r'lr_schedule\.length must be > 0, got 0'),
    (dict(name='warmup', length=5, schedule=dict(name='manual', init_value=0.1)),
     r"lr_schedule\.schedule must be a fixed schedule, got the dynamic 'manual'"),
    (dict(name='warmup', length=5, schedule=dict(name='nope')),
     r"lr_schedule\.schedule\.name: unknown schedule 'nope'"),
    (dict(name='reduce_on_plateau', init_value=0.1, factor=1.5),
     r'lr_schedule\.factor must be in \(0, 1\), got 1\.5'),
    (dict(name='reduce_on_plateau', init_value=0.1, factor=0), r'lr_schedule\.factor must be in'),
    (dict(name='reduce_on_plateau', init_value=0.1, patience=-1),
     r'lr_schedule\.patience must be a whole number >= 0, got -1'),
    (dict(name='reduce_on_plateau', init_value=0.1, patience=2.5),
     r'lr_schedule\.patience must be a whole number >= 0, got 2\.5'),
    (dict(name='reduce_on_plateau', init_value=0.1, cooldown=-2),
     r'lr_schedule\.cooldown must be a whole number >= 0, got -2'),
    (dict(name='reduce_on_plateau', init_value=0.1, threshold=-1e-4),
     r'lr_schedule\.threshold must be >= 0'),
    (dict(name='reduce_on_plateau', init_value=0.1, threshold_mode='relative'),
     r"lr_schedule\.threshold_mode must be one of 'rel', 'abs', got 'relative'"),
    (dict(name='reduce_on_plateau', init_value=0.1, min_lr=-1e-5), r'min_lr must be >= 0'),
    (dict(name='reduce_on_plateau', init_value=0.1, min_lr=0.5),
     r'lr_schedule\.min_lr must be <= init_value=0\.1, got 0\.5'),
    (dict(name='reduce_on_plateau', init_value=0.1, metric='val_loss'),
     r"lr_schedule\.metric must be one of 'validation_loss', .*got 'val_loss'"),
    (dict(name='reduce_on_plateau', init_value=0.1, metric='test_accuracy', mode='min'),
     r"lr_schedule\.mode must be 'max' for metric 'test_accuracy', got 'min'"),
    (dict(name='reduce_on_plateau', init_value=0.1, mode='down'),
     r"lr_schedule\.mode must be 'min' for metric 'validation_loss', got 'down'"),
    (dict(name='manual', init_value=0.0), r'lr_schedule\.init_value must be > 0, got 0\.0'),
])
def test_bad_parameter_raises_config_error_naming_it(config, message):
  with pytest.raises(ConfigError, match=message) as info:
    build_lr_schedule(config)
  assert '\n' not in str(info.value)


def test_config_errors_use_the_given_prefix():
  with pytest.raises(ConfigError, match=r'^reference\.init_value must be >= 0'):
    build_lr_schedule(dict(name='constant', init_value=-1), prefix='reference')


def test_docs_table_lists_every_registered_schedule():
  """docs/schedules.md has a row for every LR and every batch-size schedule, and no other."""
  from lr_study.schedules.batch import BATCH_SCHEDULES  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(__file__), '..', 'docs', 'schedules.md')
  with open(path, encoding='utf-8') as f:
    documented = set(re.findall(r'^\| `(\w+)` \|', f.read(), flags=re.MULTILINE))
  assert documented == set(registered_schedules()) | set(BATCH_SCHEDULES)
