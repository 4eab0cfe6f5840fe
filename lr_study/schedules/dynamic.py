"""Dynamic schedules: a constant base LR that the training loop changes at run time.

The schedule itself is constant (``fn(t) = init_value``); the loop keeps a multiplier on
the host and sends ``schedule(t) · multiplier`` to the compiled step as data, so a change
never recompiles it.

* ``reduce_on_plateau``: the multiplier is cut by ``factor`` when ``metric`` has not
  improved for ``patience`` evaluations (:mod:`lr_study.schedules.plateau`, PyTorch's and Keras's
  ``ReduceLROnPlateau`` rule).
* ``manual``: Ng C2W2L09's manual decay; the user sets a new LR of a running or stopped
  run with ``python -m lr_study.training.manual_lr --run_dir=... --lr=...``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from lr_study.errors import ConfigError
from lr_study.schedules.plateau import METRICS, PlateauDetector, ReduceLROnPlateau
from lr_study import checks
from lr_study.schedules.base import LRSchedule, register
from lr_study.schedules.decay import constant



def _constant(name: str, init_value: float, dynamic: str,
              params: Mapping[str, Any] | None = None) -> LRSchedule:
  """The ``constant`` schedule at ``init_value`` > 0 (the loop divides by it), made dynamic."""
  base = constant(checks.positive('init_value', init_value))
  return dataclasses.replace(base, name=name, dynamic=dynamic, params=dict(params or {}))


def _mode(metric: str, mode: str | None) -> str:
  """``mode``, or the one ``metric`` needs: 'min' for a loss, 'max' for an accuracy."""
  checks.choice('metric', metric, METRICS)
  needed = 'min' if metric.endswith('_loss') else 'max'
  if mode is not None and mode != needed:
    raise ConfigError(f'mode must be {needed!r} for metric {metric!r}, got {mode!r}')
  return needed


def plateau_controller(schedule: LRSchedule) -> ReduceLROnPlateau:
  """A fresh :class:`~lr_study.schedules.plateau.ReduceLROnPlateau` with the parameters of a
  ``reduce_on_plateau`` schedule built by ``build_lr_schedule``."""
  p = schedule.params
  return ReduceLROnPlateau(PlateauDetector.from_params(p), factor=p['factor'], min_lr=p['min_lr'])


@register('reduce_on_plateau', example={'init_value': 0.1, 'patience': 5, 'factor': 0.5})
def reduce_on_plateau(init_value: float, metric: str = 'validation_loss', mode: str | None = None,
                      factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                      threshold_mode: str = 'rel', cooldown: int = 0,
                      min_lr: float = 0.0) -> LRSchedule:
  """η = init_value · m, with m ← max(m · factor, min_lr / init_value) whenever ``metric``
  has not improved for more than ``patience`` evaluations, then ``cooldown`` evaluations
  of rest.

  Improvement (mode 'min'; 'max' mirrors it): value < best·(1 − threshold) for
  ``threshold_mode='rel'``, value < best − threshold for 'abs'. The defaults are PyTorch's
  ``ReduceLROnPlateau``. ``metric`` is one of ``{validation,test,train}_{loss,accuracy}``
  (evaluated every ``eval_every_epochs``); ``mode`` defaults to the one it needs ('min'
  for a loss, 'max' for an accuracy) and may not contradict it. Keras's
  ``ReduceLROnPlateau`` has the same rule with ``min_delta`` (absolute only) for
  ``threshold``.
  """
  params = {'metric': metric, 'mode': _mode(metric, mode),
            'factor': checks.number('factor', factor),
            'patience': checks.integer('patience', patience, 0),
            'threshold': checks.number('threshold', threshold),
            'threshold_mode': threshold_mode,
            'cooldown': checks.integer('cooldown', cooldown, 0),
            'min_lr': checks.number('min_lr', min_lr)}
  schedule = _constant('reduce_on_plateau', init_value, 'reduce_on_plateau', params)
  if params['min_lr'] > schedule.init_value:
    raise ConfigError(f'min_lr must be <= init_value={schedule.init_value}, got {min_lr!r}')
  plateau_controller(schedule)  # checks the detector's parameters
  return schedule


@register('manual', example={'init_value': 0.1})
def manual(init_value: float, changes: Any = ()) -> LRSchedule:
  """η = the LR last set by hand, ``init_value`` until then.

  Ng C2W2L09's manual decay: by a request to the running or stopped run
  (``python -m lr_study.training.manual_lr``), or scripted, ``changes=((epoch, lr), ...)``
  setting ``lr`` at the start of each whole 0-based ``epoch``. A change takes effect at the
  next update and is logged with that update in ``schedule_events.jsonl``.
  PyTorch/Keras: assigning ``optimizer.param_groups[i]['lr']`` /
  ``optimizer.learning_rate`` by hand.
  """
  if isinstance(changes, (str, bytes)) or not isinstance(changes, Sequence) or not all(
      isinstance(c, Sequence) and len(c) == 2 for c in changes):
    raise ConfigError(f'changes must be a sequence of (epoch, learning_rate), got {changes!r}')
  script = tuple((checks.integer('changes epoch', e, 0), checks.positive('changes learning_rate', lr))
                 for e, lr in changes)
  epochs = [e for e, _ in script]
  if epochs != sorted(set(epochs)):
    raise ConfigError(f'changes must name increasing epochs, got {tuple(epochs)}')
  return _constant('manual', init_value, 'manual', {'changes': script})
