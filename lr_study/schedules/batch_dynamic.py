"""Batch-size schedules the training loop changes at run time, from what it measures.

Both start at ``batch_size``; the plan assumes B holds, and at each evaluation the loop
asks the schedule for the batch of the next epochs and, when it grows, re-plans the
remaining epochs with it (``TrainingPlan.with_batch_size_from``), so every count stays
exact and a resumed run replays the same changes. B never shrinks, and never passes
``max_batch_size``; every batch size a schedule can reach is checked against the devices
before training (``BatchSchedule.reachable``).

* ``increase_on_plateau``: B ← min(round(B · factor), max_batch_size) whenever a
  validation or training metric plateaus (``lr_study.schedules.plateau``, PyTorch's rule).
* ``noise_adaptive``: B tracks the gradient noise scale measured at the evaluations,
  B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, ``lr_study.training.gradient_noise``;
  an evaluation without a measurement keeps B):

      B ← max(B, min(max_batch_size, multiple · ⌊scale · B_simple / multiple⌋)).
"""

from __future__ import annotations

import dataclasses
import math

from lr_study import checks
from lr_study.errors import ConfigError
from lr_study.schedules.batch import BatchSchedule, _cap, register
from lr_study.schedules.plateau import METRICS, PlateauDetector


def next_on_plateau(schedule: BatchSchedule, batch_size: int) -> int:
  """``increase_on_plateau``'s batch after a plateau at ``batch_size``."""
  return min(int(round(batch_size * schedule.params['factor'])), schedule.max_batch_size)


def next_for_noise(schedule: BatchSchedule, batch_size: int, b_simple: float) -> int:
  """``noise_adaptive``'s batch for a measured ``b_simple`` (a NaN keeps B)."""
  if not math.isfinite(b_simple):
    return batch_size
  m = schedule.params['multiple']
  target = m * math.floor(schedule.params['scale'] * b_simple / m)
  return max(batch_size, min(schedule.max_batch_size, target))


@register('increase_on_plateau')
def increase_on_plateau(batch_size: int, max_batch_size: int, factor: float = 5.0,
                        metric: str = 'validation_loss', mode: str = 'min', patience: int = 10,
                        threshold: float = 1e-4, threshold_mode: str = 'rel',
                        cooldown: int = 0) -> BatchSchedule:
  """Multiply B by ``factor`` whenever ``metric`` plateaus, up to ``max_batch_size``.

  The batch-size counterpart of PyTorch's ``ReduceLROnPlateau`` (same detector,
  ``lr_study.schedules.plateau.PlateauDetector``).
  """
  b0 = checks.integer('batch_size', batch_size, 1)
  cap = _cap(max_batch_size, b0)
  f = checks.positive('factor', factor)
  if f <= 1:
    raise ConfigError(f'factor must be > 1 to increase the batch, got {factor!r}')
  checks.choice('metric', metric, METRICS)
  detector = {'mode': mode, 'patience': patience, 'threshold': threshold,
              'threshold_mode': threshold_mode, 'cooldown': cooldown}
  PlateauDetector(**detector)  # checks them
  schedule = BatchSchedule('increase_on_plateau', lambda e: (b0, 1.0), init_value=b0,
                           max_batch_size=cap, dynamic='increase_on_plateau',
                           params={'batch_size': b0, 'max_batch_size': cap, 'factor': f,
                                   'metric': metric, **detector})
  sizes = [b0]
  while (nxt := next_on_plateau(schedule, sizes[-1])) != sizes[-1]:
    sizes.append(nxt)
  return dataclasses.replace(schedule, reachable=tuple(sizes))


@register('noise_adaptive')
def noise_adaptive(batch_size: int, max_batch_size: int, scale: float = 1.0,
                   multiple: int | None = None) -> BatchSchedule:
  """B follows ``scale`` times the measured gradient noise scale B_simple, at each
  evaluation, in steps of ``multiple`` (default ``batch_size``), up to ``max_batch_size``.

  McCandlish et al. (2018): B_simple estimates the critical batch past which a larger
  batch buys few fewer updates; ``scale`` sets how close to it the run trains.
  """
  b0 = checks.integer('batch_size', batch_size, 1)
  m = checks.integer('multiple', b0 if multiple is None else multiple, 1)
  if b0 % m:
    raise ConfigError(f'batch_size must be a multiple of multiple={m}, got {b0}')
  cap = _cap(max_batch_size, b0, m)
  return BatchSchedule('noise_adaptive', lambda e: (b0, 1.0), init_value=b0, max_batch_size=cap,
                       dynamic='noise_adaptive', reachable=tuple(range(b0, cap + 1, m)),
                       params={'batch_size': b0, 'max_batch_size': cap,
                               'scale': checks.positive('scale', scale), 'multiple': m})
