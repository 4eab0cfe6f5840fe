"""The checks of config values, shared by every builder (schedules, batch schedules,
models, optimizers, the plan, the datasets).

Each returns the value in its canonical type or raises ``ConfigError`` with a one-line
message that starts with the parameter's name; the registry puts the config path in front
(``lr_schedule.``). One rule for whole numbers: an ``int`` (or NumPy integer), never a
float, so ``batch_size=8.0`` and ``widths=(128.0,)`` are refused alike.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from lr_study.errors import ConfigError


def number(name: str, value: Any) -> float:
  """``value``, an int or a float (not a bool, not text), as a finite float."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise ConfigError(f'{name} must be a number, got {value!r}')
  if not math.isfinite(value):
    raise ConfigError(f'{name} must be a finite number, got {value!r}')
  return float(value)


def nonnegative(name: str, value: Any) -> float:
  """A learning rate, a decay rate or an offset: finite and >= 0."""
  x = number(name, value)
  if x < 0:
    raise ConfigError(f'{name} must be >= 0, got {value!r}')
  return x


def positive(name: str, value: Any) -> float:
  """A factor, a period or a step: finite and > 0."""
  x = number(name, value)
  if x <= 0:
    raise ConfigError(f'{name} must be > 0, got {value!r}')
  return x


def is_integer(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def integer(name: str, value: Any, minimum: int) -> int:
  """A count (a batch size, a patience, a width): an ``int`` >= ``minimum``."""
  if not is_integer(value) or value < minimum:
    raise ConfigError(f'{name} must be a whole number >= {minimum}, got {value!r}')
  return int(value)


def integers(name: str, values: Any, minimum: int) -> tuple[int, ...]:
  """A sequence of ``int`` >= ``minimum`` (layer widths, epoch boundaries)."""
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not all(
      is_integer(v) and v >= minimum for v in values):
    raise ConfigError(f'{name} must be a sequence of whole numbers >= {minimum}, got {values!r}')
  return tuple(int(v) for v in values)


def boolean(name: str, value: Any) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise ConfigError(f'{name} must be True or False, got {value!r}')
  return bool(value)


def fraction(name: str, value: Any, *, closed: bool = False) -> float:
  """A probability, a momentum or a decay: in [0, 1), or [0, 1] when ``closed``."""
  x = number(name, value)
  if not (0 <= x <= 1 if closed else 0 <= x < 1):
    raise ConfigError(f'{name} must be in [0, 1{"]" if closed else ")"}, got {value!r}')
  return x


def choice(name: str, value: Any, options: Sequence[Any]) -> Any:
  if value not in options:
    raise ConfigError(f'{name} must be one of {", ".join(map(repr, options))}, got {value!r}')
  return value


def increasing(name: str, values: Any) -> tuple[float, ...]:
  """Strictly increasing values >= 0, e.g. the epochs at which a schedule jumps."""
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
    raise ConfigError(f'{name} must be a sequence of numbers, got {values!r}')
  xs = tuple(nonnegative(name, v) for v in values)
  if any(b <= a for a, b in zip(xs, xs[1:])):
    raise ConfigError(f'{name} must increase, got {tuple(values)}')
  return xs


def inside(name: str, boundaries: Sequence[float], end: int, unit: str) -> None:
  """Boundaries of a run of ``end`` epochs or updates (``unit``): each in ``[0, end)``."""
  if any(not 0 <= b < end for b in boundaries):
    raise ConfigError(f'{name} {tuple(boundaries)} must lie inside the {end} {unit} '
                      f'(in [0, {end}))')


def clock(value: Any) -> str:
  return choice('clock', value, ('epoch', 'update'))


def stepping(value: Any, on_clock: str) -> str:
  """The stepping of a smooth formula; by default ``'per_epoch'`` on the epoch clock
  (PyTorch's per-epoch ``scheduler.step()``) and ``'continuous'`` on the update clock."""
  if value is None:
    return 'per_epoch' if on_clock == 'epoch' else 'continuous'
  return choice('stepping', value, ('per_epoch', 'continuous'))
