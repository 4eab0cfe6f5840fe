"""Reduce-on-plateau follows PyTorch's ReduceLROnPlateau, on hand-computed sequences.

Each expected sequence is the LR after each evaluation; PyTorch 2.13's
``torch.optim.lr_scheduler.ReduceLROnPlateau`` gives the same ones (checked by hand).
"""

from __future__ import annotations

import pytest

from lr_study.errors import ConfigError
from lr_study.schedules.plateau import PlateauDetector, ReduceLROnPlateau


def lrs_after(values, base_lr=1.0, factor=0.5, min_lr=0.0, **detector):
  """The LR after each evaluation, and whether each one changed it."""
  controller = ReduceLROnPlateau(PlateauDetector(**detector), factor=factor, min_lr=min_lr)
  lrs, changed = [], []
  for value in values:
    changed.append(controller.update(value, base_lr))
    lrs.append(base_lr * controller.multiplier)
  return lrs, changed


def test_cuts_after_more_than_patience_evaluations_without_improvement():
  # best 0.9 from eval 1; evals 2, 3, 4 are bad (1, 2, 3 > 2 = patience): cut after eval 4.
  lrs, changed = lrs_after([1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8], patience=2)
  assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]
  assert changed == [False] * 4 + [True] + [False] * 3 + [True]


def test_patience_zero_cuts_at_the_first_bad_evaluation():
  assert lrs_after([1.0, 0.5, 0.6, 0.4, 0.4], patience=0)[0] == [1, 1, 0.5, 0.5, 0.25]


def test_cooldown_ignores_bad_evaluations_after_a_cut():
  # patience 1, cooldown 2, never improving: cut after evals 2, 6 and 10
  # (2 cooldown evals, then 2 bad ones).
  lrs, _ = lrs_after([1.0] * 11, patience=1, cooldown=2)
  assert lrs == [1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125]


def test_rel_threshold_needs_a_relative_improvement():
  # best 2.0, threshold 0.1 rel: improving needs < 2.0·0.9 = 1.8, so 1.85 is bad.
  assert lrs_after([2.0, 1.85, 1.85], patience=0, threshold=0.1, threshold_mode='rel')[0] == [
      1, 0.5, 0.25]


def test_abs_threshold_needs_an_absolute_improvement():
  # best 2.0, threshold 0.1 abs: improving needs < 1.9, so 1.85 is good; then < 1.75.
  assert lrs_after([2.0, 1.85, 1.85], patience=0, threshold=0.1, threshold_mode='abs')[0] == [
      1, 1, 0.5]


def test_default_rel_threshold_ignores_tiny_improvements():
  # threshold 1e-4 rel: 0.99995 and 0.99992 are not below 1.0·(1 − 1e-4) = 0.9999.
  assert lrs_after([1.0, 0.99995, 0.99992], patience=0)[0] == [1, 0.5, 0.25]


def test_mode_max_counts_increases_as_improvements():
  # accuracy: 0.6 after 0.6 and then 0.59 are bad; with patience 1 the cut comes at 0.59.
  lrs, _ = lrs_after([0.5, 0.6, 0.6, 0.59, 0.7, 0.7, 0.7], patience=1, mode='max')
  assert lrs == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_min_lr_floors_the_lr_and_then_reports_no_change():
  lrs, changed = lrs_after([1.0] * 4, factor=0.1, min_lr=0.05, patience=0)
  assert lrs == pytest.approx([1.0, 0.1, 0.05, 0.05])
  assert changed == [False, True, True, False]


def test_min_lr_is_relative_to_the_base_lr():
  lrs, _ = lrs_after([1.0] * 4, base_lr=0.2, factor=0.1, min_lr=0.01, patience=0)
  assert lrs == pytest.approx([0.2, 0.02, 0.01, 0.01])


def test_state_dict_resumes_the_same_sequence():
  values = [1.0, 0.9, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9]
  straight, _ = lrs_after(values, patience=2, cooldown=1)
  first = ReduceLROnPlateau(PlateauDetector(patience=2, cooldown=1), factor=0.5)
  for value in values[:4]:
    first.update(value, 1.0)
  resumed = ReduceLROnPlateau(PlateauDetector(patience=2, cooldown=1), factor=0.5)
  resumed.load_state_dict(first.state_dict())
  rest = []
  for value in values[4:]:
    resumed.update(value, 1.0)
    rest.append(resumed.multiplier)
  assert rest == straight[4:]


@pytest.mark.parametrize('kwargs, message', [
    (dict(mode='up'), r"^mode must be one of 'min', 'max', got 'up'$"),
    (dict(threshold_mode='relative'), r"threshold_mode must be one of 'rel', 'abs'"),
    (dict(patience=-1), r'patience must be a whole number >= 0, got -1'),
    (dict(cooldown=-1), r'cooldown must be a whole number >= 0, got -1'),
    (dict(threshold=-0.1), r'threshold must be >= 0, got -0.1'),
])
def test_bad_detector_parameter_raises_config_error(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    PlateauDetector(**kwargs)


@pytest.mark.parametrize('kwargs, message', [
    (dict(factor=1.0), r'factor must be in \(0, 1\), got 1.0'),
    (dict(factor=0.0), r'factor must be in \(0, 1\), got 0.0'),
    (dict(min_lr=-1e-3), r'min_lr must be >= 0'),
])
def test_bad_reduce_parameter_raises_config_error(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    ReduceLROnPlateau(PlateauDetector(), **kwargs)
