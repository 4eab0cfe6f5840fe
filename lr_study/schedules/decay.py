"""Decay schedules: the lectures' and the paper's η(t), built on optax's schedules.

Sources: Raschka, STAT 453 L12.1 (exponential decay); Ng, C2W2L09 "Learning rate decay"
(inverse-time, 0.95^epoch, k/√epoch, k/√t, staircase, manual); Smith et al. 2018 §5.1
(divide by 5 at epochs 60, 120 and 160); Loshchilov & Hutter 2017 / optax (cosine).

Every schedule is an optax schedule ``count -> value`` whose count is lr_study's clock
value t (:func:`clock_fn`). Where optax has the schedule it is optax's own function:

* ``constant``: ``optax.constant_schedule``;
* ``exponential``, ``power``: ``optax.exponential_decay`` (:func:`exponential_rate`);
* ``step``: ``optax.exponential_decay(..., staircase=True)``;
* ``multistep``: ``optax.piecewise_constant_schedule`` (``factors``) or
  ``optax.join_schedules`` of ``optax.constant_schedule`` (``values``);
* ``cosine``: ``optax.cosine_decay_schedule``;
* ``linear``: ``optax.linear_schedule``.

The two that optax lacks are written in its style, as pure factories:
:func:`inverse_time_decay` and :func:`inverse_sqrt_decay`.

The smooth formulas take ``clock`` and ``stepping``; ``stepping`` defaults to
``'per_epoch'`` on the epoch clock (PyTorch's per-epoch ``scheduler.step()``: during
0-based epoch e the LR is f(e)) and ``'continuous'`` on the update clock.

``offset`` is added to the clock before the formula: Ng counts epochs from 1
(``epoch_num = e + 1``), so ``offset=1`` reproduces his numbers exactly, e.g.
α0/(1 + decay_rate·epoch_num) = 0.1 during the first epoch for α0 = 0.2, decay_rate = 1.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_study.errors import ConfigError
from lr_study import checks
from lr_study.schedules.base import LRSchedule, clock_fn, make_schedule, register
from lr_study.schedules.optax_style import exponential_rate, inverse_sqrt_decay, inverse_time_decay


def _formula(name: str, schedule: optax.Schedule, clock: str,
             stepping: str | None) -> LRSchedule:
  """An optax schedule on ``clock``, with the default stepping of that clock."""
  on_clock = checks.clock(clock)
  steps = checks.stepping(stepping, on_clock)
  return make_schedule(name, clock_fn(schedule), clock=on_clock, stepping=steps,
                       params={'stepping': steps})


@register('constant', example={'init_value': 0.1})
def constant(init_value: float, clock: str = 'epoch') -> LRSchedule:
  """η(t) = η0: ``optax.constant_schedule``. (PyTorch: no scheduler; Keras: a float.)

  >>> lr = constant(0.1)
  >>> print(*[f'{lr(t):g}' for t in (0, 10.5, 1e6)])
  0.1 0.1 0.1
  """
  lr = checks.nonnegative('init_value', init_value)
  return make_schedule('constant', clock_fn(optax.constant_schedule(lr)),
                       clock=checks.clock(clock), stepping='continuous')


@register('exponential', example={'init_value': 0.5, 'k': 0.05})
def exponential(init_value: float, k: float, offset: float = 0.0, clock: str = 'epoch',
                stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · e^(−k·(t + offset))  (Raschka L12.1: η0 = 0.5, k = 0.1 or 0.01, t in epochs).

  ``optax.exponential_decay`` (:func:`exponential_rate`) from η0·e^(−k·offset). Equals
  ``power`` with γ = e^(−k). Keras ``ExponentialDecay`` and optax's own parameters write
  it as η0·r^(t/T): k = −ln(r)/T.

  >>> lr = exponential(0.5, k=0.1)
  >>> print(*[f'{lr(t):.5f}' for t in (0, 10, 10.5, 50)])
  0.50000 0.18394 0.18394 0.00337
  """
  lr = checks.nonnegative('init_value', init_value)
  rate = checks.nonnegative('k', k)
  shift = checks.nonnegative('offset', offset)
  return _formula('exponential', exponential_rate(lr * math.exp(-rate * shift), -rate),
                  clock, stepping)


@register('power', example={'init_value': 0.2, 'gamma': 0.95})
def power(init_value: float, gamma: float, offset: float = 0.0, clock: str = 'epoch',
          stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · γ^(t + offset)  (Ng C2W2L09: 0.95^epoch_num · α0).

  ``optax.exponential_decay`` (:func:`exponential_rate`) from η0·γ^offset. PyTorch
  ``ExponentialLR(gamma)`` stepped per epoch is this with the default
  ``stepping='per_epoch'``:

  >>> lr = power(0.2, gamma=0.95)
  >>> print(*[f'{lr(t):g}' for t in (0, 1, 2, 3, 3.5)])
  0.2 0.19 0.1805 0.171475 0.171475
  """
  lr = checks.nonnegative('init_value', init_value)
  g = checks.positive('gamma', gamma)
  shift = checks.nonnegative('offset', offset)
  return _formula('power', exponential_rate(lr * g**shift, math.log(g)), clock, stepping)


@register('step', example={'init_value': 0.1, 'gamma': 0.5, 'step_size': 20})
def step(init_value: float, gamma: float, step_size: float, clock: str = 'epoch',
         stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · γ^⌊t / step_size⌋, e.g. γ = 0.5 halves the LR every ``step_size`` epochs.

  ``optax.exponential_decay(η0, step_size, γ, staircase=True)``; PyTorch
  ``StepLR(step_size, gamma)`` stepped per epoch. optax raises γ to the power itself, so
  on the device γ is rounded to float32 (exact for γ = 0.5, 0.25, ...).

  >>> lr = step(0.1, gamma=0.5, step_size=20)
  >>> print(*[f'{lr(t):g}' for t in (0, 19.9, 20, 45)])
  0.1 0.1 0.05 0.025
  """
  lr = checks.nonnegative('init_value', init_value)
  g = checks.positive('gamma', gamma)
  size = checks.positive('step_size', step_size)
  return _formula('step', optax.exponential_decay(lr, transition_steps=size, decay_rate=g,
                                                  staircase=True), clock, stepping)


def _multistep_schedule(init_value: float, boundaries: tuple[float, ...], factors: Any,
                        values: Any) -> optax.Schedule:
  """The piecewise-constant optax schedule of ``factors`` or ``values``."""
  n = len(boundaries)
  if factors is not None and values is not None:
    raise ConfigError(f'factors: give factors or values, not both (values={values!r})')
  if values is not None:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != n:
      raise ConfigError(f'values must give one LR per boundary ({n}), got {values!r}')
    levels = [init_value] + [checks.nonnegative('values', v) for v in values]
    # piecewise_constant_schedule takes scales, values[i]/values[i - 1]: a zero level
    # followed by another makes the scale inf, and its v·indicator + (1 − indicator)·scale·v
    # is then nan at every count. join_schedules switches to each level at count >= b as
    # piecewise_constant_schedule does (``step < boundary`` keeps the previous one).
    return optax.join_schedules([optax.constant_schedule(v) for v in levels], boundaries)
  factors = 0.1 if factors is None else factors
  if isinstance(factors, Sequence) and not isinstance(factors, (str, bytes)):
    if len(factors) != n:
      raise ConfigError(f'factors must give one factor per boundary ({n}), got {factors!r}')
    fs = [checks.positive('factors', f) for f in factors]
  else:
    fs = [checks.positive('factors', factors)] * n
  # Its indicator max(0, sign(b − count)) is 0 from count = b on, fractional b included:
  # the jump is at t = b exactly.
  return optax.piecewise_constant_schedule(init_value, dict(zip(boundaries, fs)))


@register('multistep', example={'init_value': 0.1, 'boundaries': (60, 120, 160), 'factors': 0.2},
          span=200)
def multistep(init_value: float, boundaries: Sequence[float], factors: Any = None,
              values: Sequence[float] | None = None, clock: str = 'epoch') -> LRSchedule:
  """Piecewise constant: η(t) = η0 · Π_{i: t ≥ b_i} γ_i, or η(t) = values[i] for the last
  boundary b_i ≤ t (η0 before the first).

  ``factors`` is one γ for every boundary or one per boundary (default 0.1, PyTorch's
  ``MultiStepLR``): ``optax.piecewise_constant_schedule(η0, {b_i: γ_i})``. ``values``
  gives the LRs from each boundary on instead: ``optax.join_schedules`` of
  ``optax.constant_schedule`` (zero levels allowed). The LR jumps at t = b exactly, as in
  PyTorch ``MultiStepLR``; Keras ``PiecewiseConstantDecay`` switches one step later
  (``step > b``), so Keras boundary b is ``b + 1`` here. The paper (Smith et al. 2018,
  §5.1) divides by 5 at epochs 60, 120 and 160:

  >>> lr = multistep(0.1, boundaries=(60, 120, 160), factors=0.2)
  >>> print(*[f'{lr(t):g}' for t in (0, 59.9, 60, 120, 160)])
  0.1 0.1 0.02 0.004 0.0008
  >>> lr = multistep(0.1, boundaries=(2.5, 4), values=(0.0, 0.01))
  >>> print(*[f'{lr(t):g}' for t in (2.4, 2.5, 4)])
  0.1 0 0.01
  """
  lr = checks.nonnegative('init_value', init_value)
  bounds = checks.increasing('boundaries', boundaries)
  schedule = _multistep_schedule(lr, bounds, factors, values)
  return make_schedule('multistep', clock_fn(schedule), clock=checks.clock(clock),
                       stepping='continuous', boundaries=bounds, params={'boundaries': bounds})


@register('inverse_time', example={'init_value': 0.2, 'decay_rate': 1.0, 'offset': 1}, span=20)
def inverse_time(init_value: float, decay_rate: float, offset: float = 0.0,
                 clock: str = 'epoch', stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 / (1 + decay_rate · (t + offset))  (Ng C2W2L09: α0 / (1 + decay_rate·epoch_num)).

  :func:`inverse_time_decay`. Ng counts epochs from 1: ``offset=1`` gives his numbers
  for α0 = 0.2 and decay_rate = 1. Keras ``InverseTimeDecay(η0, decay_steps,
  decay_rate)`` is offset 0 and decay_rate/decay_steps here.

  >>> lr = inverse_time(0.2, decay_rate=1.0, offset=1)
  >>> print(*[f'{lr(t):.3g}' for t in (0, 1, 2, 3)])
  0.1 0.0667 0.05 0.04
  """
  lr = checks.nonnegative('init_value', init_value)
  rate = checks.nonnegative('decay_rate', decay_rate)
  shift = checks.nonnegative('offset', offset)
  return _formula('inverse_time', inverse_time_decay(lr, rate, shift), clock, stepping)


@register('inverse_sqrt', example={'init_value': 0.2, 'k': 1.0}, span=50)
def inverse_sqrt(init_value: float, k: float = 1.0, offset: float = 1.0, clock: str = 'epoch',
                 stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · k / √(t + offset)  (Ng C2W2L09: k/√epoch_num · α0, or k/√t · α0 with t the
  mini-batch number: ``clock='update'``).

  :func:`inverse_sqrt_decay`. Ng's epoch_num and t count from 1, so ``offset`` defaults
  to 1; it must be > 0, where the formula is finite.

  >>> lr = inverse_sqrt(0.2, k=1.0)
  >>> print(*[f'{lr(t):.4g}' for t in (0, 1, 2, 3)])
  0.2 0.1414 0.1155 0.1
  """
  lr = checks.nonnegative('init_value', init_value)
  scale = checks.nonnegative('k', k)
  shift = checks.positive('offset', offset)
  return _formula('inverse_sqrt', inverse_sqrt_decay(lr, scale, shift), clock, stepping)


@register('cosine', example={'init_value': 0.1, 'decay_steps': 100, 'alpha': 0.01}, span=120)
def cosine(init_value: float, decay_steps: float, alpha: float = 0.0, exponent: float = 1.0,
           clock: str = 'epoch', stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 · ((1 − α) · c^p + α), c = ½(1 + cos(π · min(t, T) / T)), T = ``decay_steps``.

  ``optax.cosine_decay_schedule(init_value, decay_steps, alpha, exponent)``: it holds
  α·η0 after T. PyTorch ``CosineAnnealingLR(T_max=T, eta_min=α·η0)`` agrees up to T but
  rises again after it (its cosine keeps going); Keras ``CosineDecay`` agrees (without
  warm-up). Loshchilov & Hutter, "SGDR", ICLR 2017.

  >>> lr = cosine(0.1, decay_steps=100, alpha=0.01)
  >>> print(*[f'{lr(t):g}' for t in (0, 50, 100, 120)])
  0.1 0.0505 0.001 0.001
  """
  lr = checks.nonnegative('init_value', init_value)
  period = checks.positive('decay_steps', decay_steps)
  floor = checks.number('alpha', alpha)
  if not 0.0 <= floor <= 1.0:
    raise ConfigError(f'alpha must be in [0, 1], got {alpha!r}')
  p = checks.positive('exponent', exponent)
  return _formula('cosine', optax.cosine_decay_schedule(lr, period, alpha=floor, exponent=p),
                  clock, stepping)


@register('linear', example={'init_value': 0.1, 'end_value': 0.001, 'transition_steps': 80})
def linear(init_value: float, end_value: float, transition_steps: float, clock: str = 'epoch',
           stepping: str | None = None) -> LRSchedule:
  """η(t) = η0 + (η1 − η0) · min(t, T) / T, η1 = ``end_value``, T = ``transition_steps``.

  ``optax.linear_schedule(init_value, end_value, transition_steps)``: it holds η1 after
  T. PyTorch ``LinearLR(start_factor=1, end_factor=η1/η0, total_iters=T)``; Keras
  ``PolynomialDecay(η0, T, η1, power=1)``.

  >>> lr = linear(0.1, end_value=0.0, transition_steps=100)
  >>> print(*[f'{lr(t):g}' for t in (0, 25, 50.5, 100, 120)])
  0.1 0.075 0.05 0 0
  """
  lr = checks.nonnegative('init_value', init_value)
  end = checks.nonnegative('end_value', end_value)
  period = checks.positive('transition_steps', transition_steps)
  return _formula('linear', optax.linear_schedule(lr, end, period), clock, stepping)
