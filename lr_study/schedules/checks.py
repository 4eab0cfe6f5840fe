"""Parameter checks shared by the schedule builders.

Each raises ``ConfigError`` with a one-line message that starts with the parameter's
name; ``build_lr_schedule`` prefixes the config path (``lr_schedule.``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from lr_study.errors import ConfigError
from lr_study.schedules.base import Clock, Stepping


def number(name: str, value: Any) -> float:
  """``value`` as a finite float."""
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise ConfigError(f'{name} must be a number, got {value!r}') from None
  if isinstance(value, bool) or not math.isfinite(x):
    raise ConfigError(f'{name} must be a finite number, got {value!r}')
  return x


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


def integer(name: str, value: Any, minimum: int) -> int:
  """A count (patience, number of updates): an integer >= ``minimum``."""
  x = number(name, value)
  if x != int(x) or x < minimum:
    raise ConfigError(f'{name} must be an integer >= {minimum}, got {value!r}')
  return int(x)


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


def clock(value: Any) -> Clock:
  return choice('clock', value, ('epoch', 'update'))


def stepping(value: Any, on_clock: Clock) -> Stepping:
  """The stepping of a smooth formula; by default ``'per_epoch'`` on the epoch clock
  (PyTorch's per-epoch ``scheduler.step()``) and ``'continuous'`` on the update clock."""
  if value is None:
    return 'per_epoch' if on_clock == 'epoch' else 'continuous'
  return choice('stepping', value, ('per_epoch', 'continuous'))
