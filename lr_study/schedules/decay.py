"""Decay schedules: closed-form η(t) of the lectures and the paper.

Sources: Raschka, STAT 453 L12.1 (exponential decay); Ng, C2W2L09 "Learning rate decay"
(inverse-time, 0.95^epoch, k/√epoch, k/√t, staircase, manual); Smith et al. 2018 §5.1
(divide by 5 at epochs 60, 120 and 160); Loshchilov & Hutter 2017 / optax (cosine).

The smooth formulas take ``clock`` and ``stepping``; ``stepping`` defaults to
``'per_epoch'`` on the epoch clock (PyTorch's per-epoch ``scheduler.step()``: during
0-based epoch e the LR is f(e)) and ``'continuous'`` on the update clock.

``offset`` is added to the clock before the formula: Ng counts epochs from 1
(``epoch_num = e + 1``), so ``offset=1`` reproduces his numbers exactly, e.g.
α0/(1 + decay_rate·epoch_num) = 0.1 during the first epoch for α0 = 0.2, decay_rate = 1.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lr_study.errors import ConfigError
from lr_study.schedules import checks
from lr_study.schedules.base import LRSchedule, array_module, make_schedule, power_of, register


def _formula(name: str, fn: Any, clock: str, stepping: str | None) -> LRSchedule:
  """A smooth formula on ``clock``, with the default stepping of that clock."""
  on_clock = checks.clock(clock)
  steps = checks.stepping(stepping, on_clock)
  return make_schedule(name, fn, clock=on_clock, stepping=steps, params={'stepping': steps})


@register('constant', example={'init_value': 0.1})
def constant(init_value: float, clock: str = 'epoch') -> LRSchedule:
  """η(t) = η0.  (PyTorch: no scheduler; Keras/optax: a float or ``optax.constant_schedule``.)"""
  lr = checks.nonnegative('init_value', init_value)
  return make_schedule('constant', lambda t: lr * array_module(t).ones_like(t),
                       clock=checks.clock(clock), stepping='continuous')


@register('exponential', example={'init_value': 0.5, 'k': 0.05})
def exponential(init_value: float, k: float, offset: float = 0.0, clock: str = 'epoch',
                stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · e^(−k·(t + offset))  (Raschka L12.1: η0 = 0.5, k = 0.1 or 0.01, t in epochs).

  Equals ``power`` with γ = e^(−k). Keras ``ExponentialDecay`` and optax
  ``exponential_decay`` write it as η0·r^(t/T): k = −ln(r)/T.
  """
  lr = checks.nonnegative('init_value', init_value)
  rate = checks.nonnegative('k', k)
  shift = checks.nonnegative('offset', offset)
  return _formula('exponential', lambda t: lr * array_module(t).exp(-rate * (t + shift)),
                  clock, stepping)


@register('power', example={'init_value': 0.2, 'gamma': 0.95})
def power(init_value: float, gamma: float, offset: float = 0.0, clock: str = 'epoch',
          stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · γ^(t + offset)  (Ng C2W2L09: 0.95^epoch_num · α0).

  PyTorch ``ExponentialLR(gamma)`` stepped per epoch is this with the default
  ``stepping='per_epoch'``: 0.2, 0.19, 0.1805, 0.171475 in epochs 0 to 3 for γ = 0.95.
  """
  lr = checks.nonnegative('init_value', init_value)
  g = checks.positive('gamma', gamma)
  shift = checks.nonnegative('offset', offset)
  return _formula('power', lambda t: lr * power_of(g, t + shift), clock, stepping)


@register('step', example={'init_value': 0.1, 'gamma': 0.5, 'step_size': 20})
def step(init_value: float, gamma: float, step_size: float, clock: str = 'epoch',
         stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · γ^⌊t / step_size⌋, e.g. γ = 0.5 halves the LR every ``step_size`` epochs.

  PyTorch ``StepLR(step_size, gamma)`` (stepped per epoch); optax ``exponential_decay``
  with ``staircase=True``, ``transition_steps=step_size``, ``decay_rate=gamma``.
  """
  lr = checks.nonnegative('init_value', init_value)
  g = checks.positive('gamma', gamma)
  size = checks.positive('step_size', step_size)
  return _formula('step', lambda t: lr * power_of(g, array_module(t).floor(t / size)),
                  clock, stepping)


def _multistep_values(init_value: float, n: int, factors: Any, values: Any) -> np.ndarray:
  """The LR before the first boundary and after each one."""
  if factors is not None and values is not None:
    raise ConfigError(f'factors: give factors or values, not both (values={values!r})')
  if values is not None:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != n:
      raise ConfigError(f'values must give one LR per boundary ({n}), got {values!r}')
    return np.array([init_value] + [checks.nonnegative('values', v) for v in values])
  factors = 0.1 if factors is None else factors
  if isinstance(factors, Sequence) and not isinstance(factors, (str, bytes)):
    if len(factors) != n:
      raise ConfigError(f'factors must give one factor per boundary ({n}), got {factors!r}')
    fs = [checks.positive('factors', f) for f in factors]
  else:
    fs = [checks.positive('factors', factors)] * n
  return init_value * np.cumprod([1.0] + fs)


@register('multistep', example={'init_value': 0.1, 'boundaries': (60, 120, 160), 'factors': 0.2},
          span=200)
def multistep(init_value: float, boundaries: Sequence[float], factors: Any = None,
              values: Sequence[float] | None = None, clock: str = 'epoch') -> LRSchedule:
  """Piecewise constant: η(t) = η0 · Π_{i: t ≥ b_i} γ_i, or η(t) = values[i] for the last
  boundary b_i ≤ t (η0 before the first).

  ``factors`` is one γ for every boundary or one per boundary (default 0.1, PyTorch's
  ``MultiStepLR``); ``values`` gives the LRs from each boundary on instead. The paper
  (Smith et al. 2018, §5.1) divides by 5 at epochs 60, 120 and 160:
  ``boundaries=(60, 120, 160), factors=0.2``.

  The LR jumps at t = b exactly: ``optax.piecewise_constant_schedule`` (``count >= b``)
  and PyTorch ``MultiStepLR`` (epoch ``b`` already uses the new LR) agree; Keras
  ``PiecewiseConstantDecay`` switches one step later (``step > b``), so Keras boundary b
  is ``b + 1`` here.
  """
  lr = checks.nonnegative('init_value', init_value)
  bounds = checks.increasing('boundaries', boundaries)
  levels = _multistep_values(lr, len(bounds), factors, values)

  def fn(t):
    xp = array_module(t)
    return xp.asarray(levels)[xp.searchsorted(xp.asarray(bounds), t, side='right')]

  return make_schedule('multistep', fn, clock=checks.clock(clock), stepping='continuous',
                       boundaries=bounds, params={'boundaries': bounds})


@register('inverse_time', example={'init_value': 0.2, 'decay_rate': 1.0, 'offset': 1}, span=20)
def inverse_time(init_value: float, decay_rate: float, offset: float = 0.0,
                 clock: str = 'epoch', stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 / (1 + decay_rate · (t + offset))  (Ng C2W2L09: α0 / (1 + decay_rate·epoch_num)).

  Ng counts epochs from 1: ``offset=1`` gives 0.1, 0.0667, 0.05, 0.04 in 0-based epochs
  0 to 3 for α0 = 0.2 and decay_rate = 1. Keras ``InverseTimeDecay(η0, decay_steps,
  decay_rate)`` is offset 0 and decay_rate/decay_steps here.
  """
  lr = checks.nonnegative('init_value', init_value)
  rate = checks.nonnegative('decay_rate', decay_rate)
  shift = checks.nonnegative('offset', offset)
  return _formula('inverse_time', lambda t: lr / (1.0 + rate * (t + shift)), clock, stepping)


@register('inverse_sqrt', example={'init_value': 0.2, 'k': 1.0}, span=50)
def inverse_sqrt(init_value: float, k: float = 1.0, offset: float = 1.0, clock: str = 'epoch',
                 stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · k / √(t + offset)  (Ng C2W2L09: k/√epoch_num · α0, or k/√t · α0 with t the
  mini-batch number: ``clock='update'``).

  Ng's epoch_num and t count from 1, so ``offset`` defaults to 1; it must be > 0, where
  the formula is finite.
  """
  lr = checks.nonnegative('init_value', init_value)
  scale = checks.nonnegative('k', k)
  shift = checks.positive('offset', offset)
  return _formula('inverse_sqrt', lambda t: lr * scale / array_module(t).sqrt(t + shift),
                  clock, stepping)


@register('cosine', example={'init_value': 0.1, 'decay_steps': 100, 'alpha': 0.01}, span=120)
def cosine(init_value: float, decay_steps: float, alpha: float = 0.0, exponent: float = 1.0,
           clock: str = 'epoch', stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · ((1 − α) · c^p + α), c = ½(1 + cos(π · min(t, T) / T)), T = ``decay_steps``.

  Exactly ``optax.cosine_decay_schedule(init_value, decay_steps, alpha, exponent)``:
  it holds α·η0 after T. PyTorch ``CosineAnnealingLR(T_max=T, eta_min=α·η0)`` agrees up
  to T but rises again after it (its cosine keeps going); Keras ``CosineDecay`` agrees
  (without warm-up). Loshchilov & Hutter, "SGDR", ICLR 2017.
  """
  lr = checks.nonnegative('init_value', init_value)
  period = checks.positive('decay_steps', decay_steps)
  floor = checks.number('alpha', alpha)
  if not 0.0 <= floor <= 1.0:
    raise ConfigError(f'alpha must be in [0, 1], got {alpha!r}')
  p = checks.positive('exponent', exponent)

  def fn(t):
    xp = array_module(t)
    c = 0.5 * (1.0 + xp.cos(np.pi * xp.minimum(t, period) / period))
    return lr * ((1.0 - floor) * c**p + floor)

  return _formula('cosine', fn, clock, stepping)
