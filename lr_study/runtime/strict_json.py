"""Strict JSON (RFC 8259) for every file a run writes: a non-finite number (NaN, ±Infinity)
becomes ``null``, and ``non_finite`` names where, so that a writer can record what the
null stood for (``mark_non_finite``); Python's ``json.loads`` with ``parse_constant``
raising, or JavaScript's ``JSON.parse``, reads every file."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np


def _non_finite_name(x: float) -> str:
  return 'NaN' if math.isnan(x) else ('Infinity' if x > 0 else '-Infinity')


def to_strict(obj: Any) -> Any:
  """``obj`` as plain JSON values: non-finite numbers become None, NumPy values Python
  ones, tuples lists, keys strings; other objects their ``str``."""
  if obj is None or isinstance(obj, (bool, str)):
    return obj
  if isinstance(obj, (int, np.integer)):
    return int(obj)
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  if isinstance(obj, np.bool_):
    return bool(obj)
  if isinstance(obj, np.ndarray):
    return to_strict(obj.tolist())
  if isinstance(obj, dict):
    return {str(k): to_strict(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_strict(v) for v in obj]
  return str(obj)


def reversible(obj: Any) -> Any:
  """``obj`` as plain JSON values (``to_strict``) with each non-finite float kept as
  ``{'__float__': 'NaN' | 'Infinity' | '-Infinity'}``, which ``from_reversible`` reads back."""
  if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
    return {'__float__': _non_finite_name(float(obj))}
  if isinstance(obj, dict):
    return {str(k): reversible(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [reversible(v) for v in obj]
  return to_strict(obj)


def from_reversible(obj: Any) -> Any:
  """The value that ``reversible`` wrote as ``obj``."""
  if isinstance(obj, dict):
    if set(obj) == {'__float__'}:
      return float(obj['__float__'].replace('Infinity', 'inf'))
    return {k: from_reversible(v) for k, v in obj.items()}
  if isinstance(obj, list):
    return [from_reversible(v) for v in obj]
  return obj


def non_finite(obj: Any, prefix: str = '') -> dict[str, str]:
  """The dotted paths of ``obj``'s non-finite numbers, each with ``'NaN'``,
  ``'Infinity'`` or ``'-Infinity'`` (what the null written in its place stood for)."""
  if isinstance(obj, (float, np.floating)):
    return {} if math.isfinite(obj) else {prefix or '.': _non_finite_name(float(obj))}
  if isinstance(obj, np.ndarray):
    return non_finite(obj.tolist(), prefix)
  if isinstance(obj, dict):
    items: Iterable[tuple[Any, Any]] = obj.items()
  elif isinstance(obj, (list, tuple)):
    items = enumerate(obj)
  else:
    return {}
  found: dict[str, str] = {}
  for key, value in items:
    found.update(non_finite(value, f'{prefix}.{key}' if prefix else str(key)))
  return found


def mark_non_finite(record: dict[str, Any], key: str = 'non_finite') -> dict[str, Any]:
  """``record`` plus ``record[key] = non_finite(record)`` when it holds a non-finite
  number (e.g. ``{'train_loss': 'NaN'}`` for a diverged run), else ``record`` itself."""
  found = non_finite(record)
  return {**record, key: found} if found else record


def dumps(obj: Any, **kwargs: Any) -> str:
  """Strict JSON text of ``obj`` (``to_strict``; keys sorted). ``kwargs`` go to json."""
  return json.dumps(to_strict(obj), allow_nan=False, sort_keys=True, **kwargs)
