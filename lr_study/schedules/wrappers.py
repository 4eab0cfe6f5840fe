"""Schedules built around another schedule: a staircase of it, a linear warm-up before it.

The inner schedule is a sub-config ``schedule`` (any fixed registered schedule), e.g.::

    config.lr_schedule = ConfigDict(dict(
        name='warmup', length=5,
        schedule=dict(name='multistep', init_value=0.4, boundaries=(30, 60, 80))))

The wrapper runs on the inner schedule's clock, in its units.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from lr_study.errors import ConfigError
from lr_study.schedules import checks
from lr_study.schedules.base import (LRSchedule, array_module, build_lr_schedule, make_schedule,
                                     register)

_INNER = {'name': 'exponential', 'init_value': 0.5, 'k': 0.05, 'stepping': 'continuous'}


def _inner(schedule: Mapping[str, Any]) -> LRSchedule:
  inner = build_lr_schedule(schedule, prefix='schedule')
  if inner.dynamic is not None:
    raise ConfigError(f'schedule must be a fixed schedule, got the dynamic {inner.name!r}')
  return inner


@register('staircase', example={'step': 10, 'schedule': _INNER})
def staircase(schedule: Mapping[str, Any], step: float) -> LRSchedule:
  """η(t) = f(step · ⌊t / step⌋): the inner schedule f held constant for ``step`` clock units.

  Ng C2W2L09's "discrete staircase"; optax ``exponential_decay(..., staircase=True)`` and
  Keras ``ExponentialDecay(..., staircase=True)`` are the staircase of ``exponential``
  (with ``step`` their ``transition_steps``/``decay_steps``).
  """
  inner = _inner(schedule)
  size = checks.positive('step', step)
  jumps = sorted({size * math.ceil(b / size) for b in inner.boundaries})
  return make_schedule('staircase', lambda t: inner(size * array_module(t).floor(t / size)),
                       clock=inner.clock, stepping='continuous', boundaries=tuple(jumps))


@register('warmup', example={'length': 10, 'schedule': {'name': 'cosine', 'init_value': 0.1,
                                                         'decay_steps': 90}})
def warmup(schedule: Mapping[str, Any], length: float, start_value: float = 0.0,
           shift: bool = True, stepping: str = 'continuous') -> LRSchedule:
  """Linear warm-up over ``length`` clock units in front of the inner schedule f.

  With ``shift=True`` (default) the inner schedule starts after the warm-up:

      η(t) = s + (f(0) − s) · t / L  for t < L,     η(t) = f(t − L)  for t ≥ L,

  as optax ``join_schedules([linear_schedule, f], [L])`` (``warmup_cosine_decay_schedule``)
  and PyTorch ``SequentialLR([LinearLR, f], milestones=[L])``. With ``shift=False`` the
  warm-up replaces the first L units of f and ramps to f(L), as in Goyal et al. 2017
  ("Accurate, large minibatch SGD": 5 warm-up epochs, then the usual step decay at
  epochs 30, 60, 80):

      η(t) = s + (f(L) − s) · t / L  for t < L,     η(t) = f(t)  for t ≥ L.

  s is ``start_value``. The ramp is continuous (per update) by default, as in Goyal et
  al.; ``stepping='per_epoch'`` steps it once per epoch, as PyTorch's ``LinearLR`` does
  when stepped per epoch.
  """
  inner = _inner(schedule)
  size = checks.positive('length', length)
  start = checks.nonnegative('start_value', start_value)
  if not isinstance(shift, bool):
    raise ConfigError(f'shift must be True or False, got {shift!r}')
  delay = size if shift else 0.0
  target = float(inner(size - delay))

  def fn(t):
    xp = array_module(t)
    ramp = start + (target - start) * t / size
    return xp.where(t < size, ramp, inner(xp.maximum(t - delay, 0.0)))

  steps = checks.stepping(stepping, inner.clock)
  return make_schedule('warmup', fn, clock=inner.clock, stepping=steps,
                       boundaries=tuple(b + delay for b in inner.boundaries if b + delay > size))
