"""Strict JSON (RFC 8259) for every file a run writes, and the one policy for non-finite
numbers (NaN, ±Infinity), which JSON cannot hold.

:func:`plain` turns an object into JSON values and gives each non-finite float to a
policy, called with its name (``'NaN'``, ``'Infinity'``, ``'-Infinity'``):

* files (:func:`to_strict`, :func:`dumps`): ``null``, and ``non_finite`` names where, so
  that a writer can record what the null stood for (``mark_non_finite``); Python's
  ``json.loads`` with ``parse_constant`` raising, or JavaScript's ``JSON.parse``, reads
  every file;
* the checkpoint's loop state (:func:`reversible`): ``{"__float__": name}``, read back
  by :func:`from_reversible`;
* config fingerprints (``lr_study.runtime.fingerprint``): the name itself.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

NonFinitePolicy = Callable[[str], Any]  # a non-finite float's name -> its JSON value
OtherPolicy = Callable[[Any, str], Any]  # (an object with no JSON form, its path) -> value


def non_finite_name(x: float) -> str:
  """``'NaN'``, ``'Infinity'`` or ``'-Infinity'``: how JSON files name ``x``."""
  return 'NaN' if math.isnan(x) else ('Infinity' if x > 0 else '-Infinity')


def plain(obj: Any, non_finite_value: NonFinitePolicy = lambda name: None,
          other: OtherPolicy = lambda value, path: str(value), path: str = '') -> Any:
  """``obj`` as plain JSON values: NumPy values as Python ones, tuples and arrays as lists,
  keys as strings; a non-finite float as ``non_finite_value(its name)``; any other object
  as ``other(obj, its dotted path)``."""
  if obj is None or isinstance(obj, (bool, str)):
    return obj
  if isinstance(obj, (int, np.integer)):
    return int(obj)
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else non_finite_value(non_finite_name(float(obj)))
  if isinstance(obj, np.bool_):
    return bool(obj)
  if isinstance(obj, np.ndarray):
    obj = obj.tolist()
  if isinstance(obj, Mapping):
    return {str(k): plain(v, non_finite_value, other, f'{path}.{k}' if path else str(k))
            for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [plain(v, non_finite_value, other, f'{path}.{i}' if path else str(i))
            for i, v in enumerate(obj)]
  return other(obj, path)


def to_strict(obj: Any) -> Any:
  """``obj`` as plain JSON values: non-finite numbers become None, other objects their
  ``str``."""
  return plain(obj)


def reversible(obj: Any) -> Any:
  """``obj`` as plain JSON values with each non-finite float kept as
  ``{'__float__': 'NaN' | 'Infinity' | '-Infinity'}``, which ``from_reversible`` reads back."""
  return plain(obj, lambda name: {'__float__': name})


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
    return {} if math.isfinite(obj) else {prefix or '.': non_finite_name(float(obj))}
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


def canonical(obj: Any) -> str:
  """The one JSON text of plain JSON values ``obj``: keys sorted, no spaces, strict."""
  return json.dumps(obj, sort_keys=True, allow_nan=False, separators=(',', ':'))
