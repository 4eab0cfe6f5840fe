"""Checks of model parameters shared by the model builders; each fails with a ConfigError."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lr_study.errors import ConfigError


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def boolean(name: str, value: Any) -> bool:
  """``value``, if it is a bool."""
  if not isinstance(value, (bool, np.bool_)):
    raise ConfigError(f'{name} must be True or False, got {value!r}')
  return bool(value)


def positive_int(name: str, value: Any) -> int:
  """``value`` as an int, if it is an integer >= 1."""
  if not _is_int(value) or value < 1:
    raise ConfigError(f'{name} must be a positive integer, got {value!r}')
  return int(value)


def non_negative_int(name: str, value: Any) -> int:
  """``value`` as an int, if it is an integer >= 0."""
  if not _is_int(value) or value < 0:
    raise ConfigError(f'{name} must be an integer >= 0, got {value!r}')
  return int(value)


def positive_ints(name: str, values: Any) -> tuple[int, ...]:
  """``values`` as a tuple of ints, if it is a sequence of integers >= 1."""
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not all(
      _is_int(v) and v >= 1 for v in values):
    raise ConfigError(f'{name} must be a sequence of positive integers, got {values!r}')
  return tuple(int(v) for v in values)


def dropout_rate(name: str, value: Any) -> float:
  """``value`` as a float, if it is a drop probability in [0, 1)."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
      0 <= value < 1):
    raise ConfigError(f'{name} must be a drop probability in [0, 1), got {value!r}')
  return float(value)
