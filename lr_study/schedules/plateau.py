"""Plateau detection, shared by reduce-LR-on-plateau and increase-batch-on-plateau.

The rule is PyTorch's ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (itself after
Keras's ``ReduceLROnPlateau``): a value counts as an improvement over the best so far
when, for ``mode='min'``,

    rel: value < best · (1 − threshold)        abs: value < best − threshold

(for ``mode='max'``: value > best · (1 + threshold), value > best + threshold), and a NaN
is never an improvement. After
``patience`` evaluations in a row without improvement the detector fires, then waits
``cooldown`` evaluations before it counts bad evaluations again.

The detector only says *when*. What happens then is the caller's: divide the learning
rate (:class:`ReduceLROnPlateau`) or multiply the batch size (the batch-size schedule
``increase_on_plateau``). Both run on the host between updates; the new value reaches
the compiled step as data.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, Mapping

from lr_study import checks
from lr_study.errors import ConfigError

Mode = Literal['min', 'max']
_PARAMS = ('mode', 'patience', 'threshold', 'threshold_mode', 'cooldown')
# The metrics the training loop measures at each evaluation, which a plateau rule may watch.
METRICS = tuple(f'{split}_{quantity}' for split in ('validation', 'test', 'train')
                for quantity in ('loss', 'accuracy'))
ThresholdMode = Literal['rel', 'abs']


@dataclasses.dataclass
class PlateauDetector:
  """Counts evaluations without improvement; ``update`` returns True when it fires."""

  mode: Mode = 'min'
  patience: int = 10
  threshold: float = 1e-4
  threshold_mode: ThresholdMode = 'rel'
  cooldown: int = 0
  best: float = dataclasses.field(default=math.nan)
  num_bad: int = 0
  cooldown_left: int = 0

  def __post_init__(self) -> None:
    checks.choice('mode', self.mode, ('min', 'max'))
    checks.choice('threshold_mode', self.threshold_mode, ('rel', 'abs'))
    checks.integer('patience', self.patience, 0)
    checks.integer('cooldown', self.cooldown, 0)
    checks.nonnegative('threshold', self.threshold)

  @classmethod
  def from_params(cls, params: Mapping[str, Any]) -> 'PlateauDetector':
    """A fresh detector from a schedule's parameters (other keys are ignored)."""
    return cls(**{k: params[k] for k in _PARAMS if k in params})

  def is_better(self, value: float) -> bool:
    """PyTorch's ``ReduceLROnPlateau.is_better``, term for term."""
    if math.isnan(value):  # PyTorch: a NaN is never an improvement
      return False
    if math.isnan(self.best):
      return True
    sign = 1.0 if self.mode == 'min' else -1.0
    margin = self.best * self.threshold if self.threshold_mode == 'rel' else self.threshold
    return sign * (self.best - value) > margin

  def update(self, value: float) -> bool:
    """Records one evaluation; True when the metric has plateaued (then resets)."""
    if self.is_better(value):
      self.best = value
      self.num_bad = 0
    else:
      self.num_bad += 1
    if self.cooldown_left > 0:
      self.cooldown_left -= 1
      self.num_bad = 0
    if self.num_bad > self.patience:
      self.cooldown_left = self.cooldown
      self.num_bad = 0
      return True
    return False

  def state_dict(self) -> dict[str, Any]:
    return {'best': self.best, 'num_bad': self.num_bad, 'cooldown_left': self.cooldown_left}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.best = float(state['best'])
    self.num_bad = int(state['num_bad'])
    self.cooldown_left = int(state['cooldown_left'])


@dataclasses.dataclass
class ReduceLROnPlateau:
  """Multiplies the learning rate by ``factor`` when the detector fires, down to ``min_lr``.

  ``multiplier`` is the factor applied on top of the scheduled learning rate; the
  training loop sends it to the compiled step as data.
  """

  detector: PlateauDetector
  factor: float = 0.1
  min_lr: float = 0.0
  multiplier: float = 1.0

  def __post_init__(self) -> None:
    if not 0.0 < self.factor < 1.0:
      raise ConfigError(f'factor must be in (0, 1), got {self.factor}')
    checks.nonnegative('min_lr', self.min_lr)

  def update(self, value: float, base_lr: float) -> bool:
    """Feeds one evaluation; True when the multiplier changed."""
    if not self.detector.update(value):
      return False
    new = max(self.multiplier * self.factor, self.min_lr / base_lr if base_lr > 0 else 0.0)
    changed = new < self.multiplier
    self.multiplier = min(new, self.multiplier)
    return changed

  def state_dict(self) -> dict[str, Any]:
    return {'detector': self.detector.state_dict(), 'multiplier': self.multiplier}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.detector.load_state_dict(state['detector'])
    self.multiplier = float(state['multiplier'])
