"""Cyclical learning rates and the LR range test that picks their bounds.

Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017 (arXiv
1506.01186), §3.1 and §3.3. All run on the update clock (Smith's "iterations"): t is
the number of updates already applied, so the first update uses ``base_lr``.

With half-cycle ``step_size`` s (Smith: 2–10 × the iterations in an epoch):

    cycle = ⌊1 + t / (2s)⌋,   x = |t/s − 2·cycle + 1|,
    η(t) = base_lr + (max_lr − base_lr) · max(0, 1 − x) · scale(t)

with scale = 1 (``triangular``), 1/2^(cycle−1) (``triangular2``: the amplitude halves
every cycle) or γ^t (``exp_range``). PyTorch ``CyclicLR(base_lr, max_lr, step_size_up=s,
mode=...)`` stepped after every batch gives the same LRs, but by default it also cycles
the momentum (``cycle_momentum=True``), which these schedules do not. Keras has no
built-in counterpart (TensorFlow Addons had ``CyclicalLearningRate``), and neither has
optax: :func:`triangular_schedule`, :func:`triangular2_schedule`,
:func:`exp_range_schedule` and the LR range test's :func:`lr_range_schedule` are written
in optax's style, as pure factories ``count -> value``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax.numpy as jnp
import optax

from lr_study.errors import ConfigError
from lr_study import checks
from lr_study.schedules.base import LRSchedule, make_schedule, register
from lr_study.schedules.base import clock_fn
from lr_study.schedules.optax_style import exponential_rate

_CLR = {'base_lr': 0.001, 'max_lr': 0.006, 'step_size': 2000}
_CLR_SPAN = 16000


def _triangle(base_lr: float, max_lr: float, step_size: float,
              scale: Callable[[Any, Any], Any]) -> optax.Schedule:
  """Smith's triangle between ``base_lr`` and ``max_lr``, its height times scale(count, cycle)."""

  def schedule(count: Any) -> Any:
    count = jnp.asarray(count)
    cycle = jnp.floor(1.0 + count / (2.0 * step_size))
    x = jnp.abs(count / step_size - 2.0 * cycle + 1.0)
    return base_lr + (max_lr - base_lr) * jnp.maximum(0.0, 1.0 - x) * scale(count, cycle)

  return schedule


def triangular_schedule(base_lr: float, max_lr: float, step_size: float) -> optax.Schedule:
  """Smith 2017 ``triangular``: scale = 1.

  >>> schedule = triangular_schedule(0.001, 0.006, step_size=2000)
  >>> print(*[f'{schedule(c):.4g}' for c in (0, 1000, 2000, 3000, 4000)])
  0.001 0.0035 0.006 0.0035 0.001
  """
  return _triangle(base_lr, max_lr, step_size, lambda count, cycle: 1.0)


def triangular2_schedule(base_lr: float, max_lr: float, step_size: float) -> optax.Schedule:
  """Smith 2017 ``triangular2``: scale = 1/2^(cycle − 1), the amplitude halved each cycle.

  >>> schedule = triangular2_schedule(0.001, 0.006, step_size=2000)
  >>> print(*[f'{schedule(c):.4g}' for c in (2000, 6000, 10000)])
  0.006 0.0035 0.00225
  """
  return _triangle(base_lr, max_lr, step_size, lambda count, cycle: 2.0**(1.0 - cycle))


def exp_range_schedule(base_lr: float, max_lr: float, step_size: float,
                       gamma: float) -> optax.Schedule:
  """Smith 2017 ``exp_range``: scale = γ^count, as exp(count · ln γ) with ln γ taken in
  float64 here, so that γ near 1 (0.99994) keeps its precision in float32.

  >>> schedule = exp_range_schedule(0.001, 0.006, step_size=2000, gamma=0.99994)
  >>> print(*[f'{schedule(c):.4g}' for c in (0, 2000, 6000, 10000)])
  0.001 0.005435 0.004488 0.003744
  """
  log_gamma = math.log(gamma)
  return _triangle(base_lr, max_lr, step_size,
                   lambda count, cycle: jnp.exp(log_gamma * count))


def lr_range_schedule(min_lr: float, max_lr: float, num_updates: int,
                      mode: str = 'linear') -> optax.Schedule:
  """The LR range test's ramp from ``min_lr`` to ``max_lr`` over ``num_updates`` counts,
  held at ``max_lr`` after (the formulas: :func:`lr_range`).

  The exponential ramp is ``optax.exponential_decay`` growing by max_lr/min_lr over
  N − 1 counts with ``end_value=max_lr`` (:func:`~lr_study.schedules.optax_style.exponential_rate`).
  The linear one is not ``optax.linear_schedule(min_lr, max_lr, N − 1)``: that computes
  (min_lr − max_lr)·(1 − u) + max_lr, which misses min_lr at count 0 by rounding
  (0.010000000000000009 for 0.01 to 1), and the test's first update must use min_lr.

  >>> schedule = lr_range_schedule(1e-5, 1.0, num_updates=6, mode='exponential')
  >>> print(*[f'{schedule(c):.3g}' for c in range(7)])
  1e-05 0.0001 0.001 0.01 0.1 1 1
  """
  if mode == 'exponential':
    return exponential_rate(min_lr, math.log(max_lr / min_lr) / (num_updates - 1),
                            end_value=max_lr)

  def schedule(count: Any) -> Any:
    return min_lr + (max_lr - min_lr) * jnp.minimum(jnp.asarray(count) / (num_updates - 1), 1.0)

  return schedule


def _cyclical(name: str, base_lr: float, max_lr: float, step_size: float,
              factory: Callable[..., optax.Schedule], *args: float) -> LRSchedule:
  """``factory(base_lr, max_lr, step_size, *args)`` on the update clock, its bounds checked."""
  low = checks.nonnegative('base_lr', base_lr)
  high = checks.nonnegative('max_lr', max_lr)
  if high < low:
    raise ConfigError(f'max_lr must be >= base_lr={low}, got {max_lr!r}')
  s = checks.positive('step_size', step_size)
  return make_schedule(name, clock_fn(factory(low, high, s, *args)), clock='update',
                       stepping='continuous')


@register('triangular', example=_CLR, span=_CLR_SPAN)
def triangular(base_lr: float, max_lr: float, step_size: float) -> LRSchedule:
  """:func:`triangular_schedule` on the update clock.

  >>> lr = triangular(0.001, 0.006, step_size=2000)
  >>> print(*[f'{lr(t):g}' for t in (0, 1000, 2000, 3000, 4000)])
  0.001 0.0035 0.006 0.0035 0.001
  """
  return _cyclical('triangular', base_lr, max_lr, step_size, triangular_schedule)


@register('triangular2', example=_CLR, span=_CLR_SPAN)
def triangular2(base_lr: float, max_lr: float, step_size: float) -> LRSchedule:
  """:func:`triangular2_schedule` on the update clock.

  >>> lr = triangular2(0.001, 0.006, step_size=2000)
  >>> print(*[f'{lr(t):g}' for t in (0, 2000, 6000, 10000)])
  0.001 0.006 0.0035 0.00225
  """
  return _cyclical('triangular2', base_lr, max_lr, step_size, triangular2_schedule)


@register('exp_range', example={**_CLR, 'gamma': 0.99994}, span=_CLR_SPAN)
def exp_range(base_lr: float, max_lr: float, step_size: float, gamma: float) -> LRSchedule:
  """:func:`exp_range_schedule` on the update clock; γ must be in (0, 1] (Smith uses values
  near 1, e.g. 0.99994).

  >>> lr = exp_range(0.001, 0.006, step_size=2000, gamma=0.99994)
  >>> print(*[f'{lr(t):.6f}' for t in (0, 2000, 6000)])
  0.001000 0.005435 0.004488
  """
  g = checks.positive('gamma', gamma)
  if g > 1.0:
    raise ConfigError(f'gamma must be in (0, 1], got {gamma!r}')
  return _cyclical('exp_range', base_lr, max_lr, step_size, exp_range_schedule, g)


@register('lr_range', example={'min_lr': 1e-4, 'max_lr': 0.1, 'num_updates': 2000}, span=2000)
def lr_range(min_lr: float, max_lr: float, num_updates: int, mode: str = 'linear') -> LRSchedule:
  """The LR range test's ramp from ``min_lr`` to ``max_lr`` over ``num_updates`` updates:

      linear:       η(t) = min_lr + (max_lr − min_lr) · u
      exponential:  η(t) = min_lr · (max_lr / min_lr)^u,      u = min(t / (N − 1), 1)

  so the first of the N updates uses ``min_lr``, the last ``max_lr``, and any later
  update ``max_lr`` (:func:`lr_range_schedule`). Smith 2017 §3.3 ramps linearly over a
  few epochs and reads the bounds off the accuracy (or loss) against the LR; the
  exponential ramp (fast.ai's ``lr_find``) spends equal time on each decade.
  ``analysis.lr_range_test`` turns the logged run into suggested ``base_lr`` and
  ``max_lr``.

  >>> lr = lr_range(0.01, 1.0, num_updates=101)
  >>> print(*[f'{lr(t):g}' for t in (0, 50, 100, 150)])
  0.01 0.505 1 1
  """
  low = checks.nonnegative('min_lr', min_lr)
  high = checks.nonnegative('max_lr', max_lr)
  if high <= low:
    raise ConfigError(f'max_lr must be > min_lr={low}, got {max_lr!r}')
  n = checks.integer('num_updates', num_updates, 2)
  checks.choice('mode', mode, ('linear', 'exponential'))
  if mode == 'exponential' and low == 0:
    raise ConfigError(f'min_lr must be > 0 for the exponential ramp, got {min_lr!r}')
  return make_schedule('lr_range', clock_fn(lr_range_schedule(low, high, n, mode)),
                       clock='update', stepping='continuous')
