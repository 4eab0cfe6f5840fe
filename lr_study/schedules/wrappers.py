"""Schedules built around another schedule: a staircase of it, a linear warm-up before it.

The inner schedule is a sub-config ``schedule`` (any fixed registered schedule), e.g.::

    config.lr_schedule = ConfigDict(dict(
        name='warmup', length=5,
        schedule=dict(name='multistep', init_value=0.4, boundaries=(30, 60, 80))))

The wrapper runs on the inner schedule's clock, in its units. The inner
:class:`LRSchedule` is itself an optax schedule (``t -> LR``, jnp-traceable), so the
warm-up is optax's ``join_schedules`` of a ``linear_schedule`` and the inner; the
staircase, which optax lacks, is :func:`staircase_schedule`, written in optax's style.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax.numpy as jnp
import optax

from lr_study.errors import ConfigError
from lr_study import checks
from lr_study.schedules.base import LRSchedule, build_lr_schedule, make_schedule, register
from lr_study.schedules.base import clock_fn

_INNER = {'name': 'exponential', 'init_value': 0.5, 'k': 0.05, 'stepping': 'continuous'}


def _inner(schedule: Mapping[str, Any]) -> LRSchedule:
  inner = build_lr_schedule(schedule, prefix='schedule')
  if inner.dynamic is not None:
    raise ConfigError(f'schedule must be a fixed schedule, got the dynamic {inner.name!r}')
  return inner


def staircase_schedule(schedule: optax.Schedule, step: float) -> optax.Schedule:
  """count -> schedule(step · ⌊count / step⌋): ``schedule`` held for ``step`` counts.

  optax has it only for ``exponential_decay`` (``staircase=True``); this holds any:

  >>> stairs = staircase_schedule(optax.linear_schedule(1.0, 0.0, 100), step=25)
  >>> print(*[f'{stairs(c):g}' for c in (0, 24, 25, 60, 99)])
  1 1 0.75 0.5 0.25
  """

  def stairs(count: Any) -> Any:
    return schedule(step * jnp.floor(jnp.asarray(count) / step))

  return stairs


@register('staircase', example={'step': 10, 'schedule': _INNER})
def staircase(schedule: Mapping[str, Any], step: float) -> LRSchedule:
  """η(t) = f(step · ⌊t / step⌋): the inner schedule f held constant for ``step`` clock units.

  :func:`staircase_schedule` of the inner schedule: Ng C2W2L09's "discrete staircase".
  optax ``exponential_decay(..., staircase=True)`` and Keras ``ExponentialDecay(...,
  staircase=True)`` are the staircase of ``exponential`` (with ``step`` their
  ``transition_steps``/``decay_steps``).

  >>> lr = staircase({'name': 'exponential', 'init_value': 0.5, 'k': 0.1}, step=10)
  >>> print(*[f'{lr(t):.4g}' for t in (0, 9.9, 10, 25)])
  0.5 0.5 0.1839 0.06767
  """
  inner = _inner(schedule)
  size = checks.positive('step', step)
  jumps = sorted({size * math.ceil(b / size) for b in inner.boundaries})
  return make_schedule('staircase', clock_fn(staircase_schedule(inner, size)),
                       clock=inner.clock, stepping='continuous', boundaries=tuple(jumps))


@register('warmup', example={'length': 10, 'schedule': {'name': 'cosine', 'init_value': 0.1,
                                                         'decay_steps': 90}})
def warmup(schedule: Mapping[str, Any], length: float, start_value: float = 0.0,
           shift: bool = True, stepping: str = 'continuous') -> LRSchedule:
  """Linear warm-up over ``length`` clock units in front of the inner schedule f.

  With ``shift=True`` (default) the inner schedule starts after the warm-up:

      η(t) = s + (f(0) − s) · t / L  for t < L,     η(t) = f(t − L)  for t ≥ L,

  ``optax.join_schedules([optax.linear_schedule(s, f(0), L), f], [L])``, as optax's
  ``warmup_cosine_decay_schedule`` and PyTorch ``SequentialLR([LinearLR, f],
  milestones=[L])``. With ``shift=False`` the warm-up replaces the first L units of f
  and ramps to f(L), as in Goyal et al. 2017 ("Accurate, large minibatch SGD": 5 warm-up
  epochs, then the usual step decay at epochs 30, 60, 80):

      η(t) = s + (f(L) − s) · t / L  for t < L,     η(t) = f(t)  for t ≥ L,

  the same join with ``linear_schedule(s, f(L), L)`` and f(c + L), since ``join_schedules``
  hands the later schedule the count since its boundary. s is ``start_value``. The ramp
  is continuous (per update) by default, as in Goyal et al.; ``stepping='per_epoch'``
  steps it once per epoch, as PyTorch's ``LinearLR`` does when stepped per epoch.

  >>> lr = warmup({'name': 'cosine', 'init_value': 0.1, 'decay_steps': 100}, length=10)
  >>> print(*[f'{lr(t):g}' for t in (0, 5, 10, 60, 110)])
  0 0.05 0.1 0.05 0
  >>> lr = warmup({'name': 'multistep', 'init_value': 0.4, 'boundaries': (30, 60, 80)},
  ...             length=5, shift=False)
  >>> print(*[f'{lr(t):g}' for t in (0, 2.5, 5, 29.9, 30)])
  0 0.2 0.4 0.4 0.04
  """
  inner = _inner(schedule)
  size = checks.positive('length', length)
  start = checks.nonnegative('start_value', start_value)
  if not isinstance(shift, bool):
    raise ConfigError(f'shift must be True or False, got {shift!r}')
  delay = size if shift else 0.0
  ramp = optax.linear_schedule(start, float(inner(size - delay)), size)
  # Without shift the inner one sees (t − L) + L: t itself for a whole or dyadic L (5
  # epochs, 0.5, any count), but up to one ulp off for some fractional L and t (L = 1.1:
  # 5.11 − 1.1 + 1.1 = 5.109999999999999 in float64), which moves an inner jump at such a
  # fractional b by that ulp.
  after = inner if shift else (lambda count: inner(count + size))
  steps = checks.stepping(stepping, inner.clock)
  return make_schedule('warmup', clock_fn(optax.join_schedules([ramp, after], [size])),
                       clock=inner.clock, stepping=steps,
                       boundaries=tuple(b + delay for b in inner.boundaries if b + delay > size))
