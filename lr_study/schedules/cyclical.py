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
built-in counterpart (TensorFlow Addons had ``CyclicalLearningRate``).
"""

from __future__ import annotations

from typing import Any, Callable

from lr_study.errors import ConfigError
from lr_study.schedules import checks
from lr_study.schedules.base import LRSchedule, array_module, make_schedule, power_of, register

_CLR = {'base_lr': 0.001, 'max_lr': 0.006, 'step_size': 2000}
_CLR_SPAN = 16000


def _cyclical(name: str, base_lr: float, max_lr: float, step_size: float,
              scale: Callable[[Any, Any], Any]) -> LRSchedule:
  """Smith's triangle between ``base_lr`` and ``max_lr``, its height times scale(t, cycle)."""
  low = checks.nonnegative('base_lr', base_lr)
  high = checks.nonnegative('max_lr', max_lr)
  if high < low:
    raise ConfigError(f'max_lr must be >= base_lr={low}, got {max_lr!r}')
  s = checks.positive('step_size', step_size)

  def fn(t):
    xp = array_module(t)
    cycle = xp.floor(1.0 + t / (2.0 * s))
    x = xp.abs(t / s - 2.0 * cycle + 1.0)
    return low + (high - low) * xp.maximum(0.0, 1.0 - x) * scale(t, cycle)

  return make_schedule(name, fn, clock='update', stepping='continuous')


@register('triangular', example=_CLR, span=_CLR_SPAN)
def triangular(base_lr: float, max_lr: float, step_size: float) -> LRSchedule:
  """Smith 2017 ``triangular``: scale = 1. Base 0.001, max 0.006, step 2000 gives 0.001,
  0.0035, 0.006, 0.0035, 0.001 at iterations 0, 1000, 2000, 3000, 4000."""
  return _cyclical('triangular', base_lr, max_lr, step_size, lambda t, cycle: 1.0)


@register('triangular2', example=_CLR, span=_CLR_SPAN)
def triangular2(base_lr: float, max_lr: float, step_size: float) -> LRSchedule:
  """Smith 2017 ``triangular2``: scale = 1/2^(cycle − 1), the amplitude halved each cycle
  (0.0035 at iteration 6000 and 0.00225 at 10000 for the example above)."""
  return _cyclical('triangular2', base_lr, max_lr, step_size,
                   lambda t, cycle: 2.0**(1.0 - cycle))


@register('exp_range', example={**_CLR, 'gamma': 0.99994}, span=_CLR_SPAN)
def exp_range(base_lr: float, max_lr: float, step_size: float, gamma: float) -> LRSchedule:
  """Smith 2017 ``exp_range``: scale = γ^t (t in iterations), the bounds decaying with it.

  γ must be in (0, 1]; Smith uses values near 1, e.g. 0.99994.
  """
  g = checks.positive('gamma', gamma)
  if g > 1.0:
    raise ConfigError(f'gamma must be in (0, 1], got {gamma!r}')
  return _cyclical('exp_range', base_lr, max_lr, step_size, lambda t, cycle: power_of(g, t))


@register('lr_range', example={'min_lr': 1e-4, 'max_lr': 0.1, 'num_updates': 2000}, span=2000)
def lr_range(min_lr: float, max_lr: float, num_updates: int, mode: str = 'linear') -> LRSchedule:
  """The LR range test's ramp from ``min_lr`` to ``max_lr`` over ``num_updates`` updates:

      linear:       η(t) = min_lr + (max_lr − min_lr) · u
      exponential:  η(t) = min_lr · (max_lr / min_lr)^u,      u = min(t / (N − 1), 1)

  so the first of the N updates uses ``min_lr``, the last ``max_lr``, and any later
  update ``max_lr``. Smith 2017 §3.3 ramps linearly over a few epochs and reads the
  bounds off the accuracy (or loss) against the LR; the exponential ramp (fast.ai's
  ``lr_find``) spends equal time on each decade. ``analysis.lr_range_test`` turns the
  logged run into suggested ``base_lr`` and ``max_lr``.
  """
  low = checks.nonnegative('min_lr', min_lr)
  high = checks.nonnegative('max_lr', max_lr)
  if high <= low:
    raise ConfigError(f'max_lr must be > min_lr={low}, got {max_lr!r}')
  n = checks.integer('num_updates', num_updates, 2)
  checks.choice('mode', mode, ('linear', 'exponential'))
  if mode == 'exponential' and low == 0:
    raise ConfigError(f'min_lr must be > 0 for the exponential ramp, got {min_lr!r}')

  def fn(t):
    u = array_module(t).minimum(t / (n - 1), 1.0)
    return low + (high - low) * u if mode == 'linear' else low * power_of(high / low, u)

  return make_schedule('lr_range', fn, clock='update', stepping='continuous')

