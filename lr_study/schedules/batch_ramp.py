r"""Batch ramps: the batch grows at any update, on the examples clock.

Large-model training raises the batch in small steps from the first updates (GPT-3's
linear ramp of B over the first tokens), not only between epochs. A ramp gives the
global batch of the update that starts after a fraction ``x`` of the run's examples,
``x = s / (E·N)`` (``s`` examples seen, ``E`` epochs of ``N`` examples), reaching
``B1`` at ``x = X`` (``over``):

    linear:     B(x) = B0 + (B1 − B0) · min(x / X, 1)
    geometric:  B(x) = B0 · (B1 / B0) ^ min(x / X, 1)

rounded down to a multiple of ``multiple`` (never below B0). Each epoch still visits its
permutation of the training set (a function of ``(seed, epoch)``) in consecutive slices:
an update takes the next B(x) examples, and the epoch ends when fewer than B(x) remain,
which are dropped, as at a constant B. So every example is used at most once per epoch,
and the updates of each epoch follow exactly from (N, E, the ramp): :func:`segments`.
After the ramp's last epoch the plan is whole epochs at B1.

Each distinct batch compiles the train step once: a ramp has at most
``(B1 − B0) / multiple + 1`` batch sizes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal

from lr_study import checks
from lr_study.errors import ConfigError
from lr_study.schedules.batch import BatchSchedule, register


@dataclasses.dataclass(frozen=True)
class Segment:
  """``updates`` consecutive updates at batch ``batch_size`` inside epoch ``epoch``,
  starting ``offset`` examples into the epoch's order."""

  epoch: int
  offset: int
  batch_size: int
  updates: int


def _ramp(kind: Literal['linear', 'geometric'], batch_size: int, final_batch_size: int,
          over: float, multiple: int | None) -> BatchSchedule:
  b0 = checks.integer('batch_size', batch_size, 1)
  b1 = checks.integer('final_batch_size', final_batch_size, b0)
  x_end = checks.number('over', over)
  if not 0 < x_end <= 1:
    raise ConfigError(f'over must be in (0, 1], got {over!r}')
  q = b0 if multiple is None else checks.integer('multiple', multiple, 1)
  if b0 % q or b1 % q:
    raise ConfigError(f'batch_size {b0} and final_batch_size {b1} must be multiples of '
                      f'multiple={q}')

  def at(x: float) -> int:
    r = min(x / x_end, 1.0)
    target = b0 + (b1 - b0) * r if kind == 'linear' else b0 * (b1 / b0) ** r
    return max(b0, q * math.floor(target / q + 1e-9))  # 1e-9: B1 itself at r = 1

  name = f'{kind}_ramp'
  return BatchSchedule(name, lambda e: (b1, 1.0), init_value=b0, ramp=at,
                       params={'batch_size': b0, 'final_batch_size': b1, 'over': x_end,
                               'multiple': q})


@register('linear_ramp')
def linear_ramp(batch_size: int, final_batch_size: int, over: float,
                multiple: int | None = None) -> BatchSchedule:
  """B(x) = B0 + (B1 − B0)·min(x/X, 1), rounded down to a multiple (module docstring).

  ``multiple`` defaults to ``batch_size``. From 64 to 256 over the first half of the
  examples, in steps of 64:

  >>> ramp = linear_ramp(batch_size=64, final_batch_size=256, over=0.5, multiple=64)
  >>> [ramp.ramp(x) for x in (0.0, 0.2, 0.25, 0.49, 0.5, 0.9)]
  [64, 128, 128, 192, 256, 256]
  """
  return _ramp('linear', batch_size, final_batch_size, over, multiple)


@register('geometric_ramp')
def geometric_ramp(batch_size: int, final_batch_size: int, over: float,
                   multiple: int | None = None) -> BatchSchedule:
  """B(x) = B0·(B1/B0)^min(x/X, 1), rounded down to a multiple (module docstring).

  From 64 to 1024 over the first 30% of the examples, in steps of 64:

  >>> ramp = geometric_ramp(batch_size=64, final_batch_size=1024, over=0.3)
  >>> [ramp.ramp(x) for x in (0.0, 0.075, 0.15, 0.225, 0.3)]
  [64, 128, 256, 512, 1024]
  """
  return _ramp('geometric', batch_size, final_batch_size, over, multiple)


def segments(ramp: Callable[[float], int], num_examples: int, num_epochs: int
             ) -> tuple[list[Segment], int]:
  """The ramp's updates, epoch by epoch, until an epoch would start at the final batch.

  Returns the segments (one per run of equal batches inside an epoch) and the first
  epoch after them; from there on every epoch is whole at ``ramp(1.0)``.
  """
  total, final = num_examples * num_epochs, ramp(1.0)
  out: list[Segment] = []
  seen = 0
  for epoch in range(num_epochs):
    if ramp(seen / total) == final:
      return out, epoch
    offset = 0
    while offset + (b := ramp(seen / total)) <= num_examples:
      last = out[-1] if out else None
      if last and (last.epoch, last.batch_size) == (epoch, b):
        out[-1] = dataclasses.replace(last, updates=last.updates + 1)
      else:
        out.append(Segment(epoch, offset, b, 1))
      offset, seen = offset + b, seen + b
  return out, num_epochs
