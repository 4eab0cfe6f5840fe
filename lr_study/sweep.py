r"""Sweeps: a grid of config points, each a study of its own in its own directory.

From the command line, one flag per swept key; repeated flags make the product::

    python launch.py --sweep=learning_rate=0.02,0.05 --sweep=batch_size=8,16

runs 4 points, each into ``WORKDIR/<point name>/<variant>/seed_<k>/``, e.g.
``WORKDIR/batch_size=8,learning_rate=0.02/decay/seed_0/``.

* ``KEY`` is a dotted config path (``learning_rate``,
  ``variants.decay.lr_schedule.init_value``); it must name a field the config has.
* Values are separated by commas outside brackets and quotes; each is read as a Python
  literal where it parses as one (``0.02``, ``16``, ``True``, ``(10, 20)``, ``'a,b'``),
  and as the plain string otherwise (``cosine``).
* The points are the product over the keys, the first key outermost.

In a config file (big_vision's style), ``config.sweep`` maps each key to its values; a
dotted key is written as nested dicts (ConfigDict keys hold no dots)::

    config.sweep = {'learning_rate': (0.02, 0.05),
                    'variants': {'decay': {'lr_schedule': {'init_value': (0.1, 0.2)}}}}

is the product of ``learning_rate`` ∈ {0.02, 0.05} and
``variants.decay.lr_schedule.init_value`` ∈ {0.1, 0.2}. A ``--sweep`` flag for a key that
the file also sweeps replaces the file's values; the file's other keys follow the flags'
(in key order). ``split_sweep`` takes the ``sweep`` entry out of the config.

A point's directory name is its ``key=value`` pairs in key order, joined by commas
(``batch_size=16,learning_rate=0.02``); characters other than letters, digits and
``._+-`` in a value become ``_``. The name is for people: a run's ``metadata.json``
records the point itself (``"sweep": {"learning_rate": 0.02}``).

Applying a point sets each key as ``--config.KEY=value`` would: ``learning_rate``, which
the paper's three variants read by reference, moves all three, while
``variants.decay.lr_schedule.init_value`` sets that variant alone
(``lr_study.study.decay_vs_batch_variants``).

The flag's text is read by ``lr_study.sweep_flags``; where a sweep goes without
``--workdir``, and its shards, are ``lr_study.sweep_shards``'s.

Errors (an unknown key, a value of the wrong type, a malformed flag, a key also set by a
``--config`` override) are one-line ``lr_study.errors.ConfigError`` messages naming the
key. This module imports no jax.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
from typing import Any, Iterable, Mapping, Sequence

import ml_collections

from lr_study.errors import ConfigError
from lr_study.sweep_flags import Axis, check_key, parse_sweep_flag

Point = dict[str, Any]  # dotted key -> value

_UNSAFE = re.compile(r'[^A-Za-z0-9._+-]')
MAX_NAME = 200  # characters of a point's directory name before it is shortened


def _check_axes(axes: Sequence[Axis]) -> list[Axis]:
  seen = set()
  for key, values in axes:
    if key in seen:
      raise ConfigError(f'sweep key {key!r} is given twice')
    seen.add(key)
    if not values:
      raise ConfigError(f'sweep key {key!r} has no values')
    names = [format_value(v) for v in values]
    if len(set(names)) != len(names):
      raise ConfigError(f'sweep key {key!r} repeats a value: {", ".join(names)}')
  return list(axes)


def axes_from_flags(flag_values: Iterable[str]) -> list[Axis]:
  """The axes of repeated ``--sweep`` flag values, in the order given."""
  return _check_axes([parse_sweep_flag(v) for v in flag_values])


def _flatten(entry: Mapping[str, Any], prefix: str = '') -> list[Axis]:
  axes = []
  for key in sorted(entry):
    value = entry[key]
    path = f'{prefix}{key}'
    if isinstance(value, Mapping):
      axes.extend(_flatten(value, f'{path}.'))
    elif isinstance(value, (tuple, list)):
      axes.append((check_key(path, 'config.sweep'), tuple(value)))
    else:
      raise ConfigError(f'config.sweep.{path} must be a tuple or list of values, '
                        f'got {value!r}')
  return axes


def axes_from_config_entry(entry: Any) -> list[Axis]:
  """The axes of a config file's ``sweep`` entry (nested dicts of value tuples)."""
  if entry is None:
    return []
  if isinstance(entry, ml_collections.ConfigDict):
    entry = entry.to_dict()
  if not isinstance(entry, Mapping):
    raise ConfigError(f'config.sweep must map config keys to tuples of values, got {entry!r}')
  return _check_axes(_flatten(entry))


def split_sweep(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict,
                                                            list[Axis]]:
  """``config`` without its ``sweep`` entry (a copy), and that entry's axes."""
  base = copy.deepcopy(config)
  if 'sweep' not in base:
    return base, []
  entry = base.sweep
  with base.unlocked():
    del base['sweep']
  return base, axes_from_config_entry(entry)


def merge_axes(flag_axes: Sequence[Axis], config_axes: Sequence[Axis],
               overridden: Iterable[str] = ()) -> list[Axis]:
  """The flags' axes, then the config's for keys no flag sweeps; a ConfigError for a key
  that a ``--config`` override in ``overridden`` also sets (or sets within, or around)."""
  flagged = {key for key, _ in flag_axes}
  axes = [*flag_axes, *[a for a in config_axes if a[0] not in flagged]]
  for (key, _), other in itertools.product(axes, list(overridden)):
    if f'{key}.'.startswith(f'{other}.') or f'{other}.'.startswith(f'{key}.'):
      raise ConfigError(f'--config.{other} and the sweep of {key!r} both set {key}: give '
                        f'its values in the sweep alone (--sweep={key}=...)')
  return _check_axes(axes)


def grid(axes: Sequence[Axis]) -> list[Point]:
  """Every point of the product of ``axes``, the first axis outermost; ``[{}]`` for none."""
  axes = _check_axes(axes)
  keys = [key for key, _ in axes]
  return [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in axes))]


def format_value(value: Any) -> str:
  """A value as it appears in a point's directory name."""
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, float):
    return repr(value) if math.isfinite(value) else str(value)
  if isinstance(value, int):
    return str(value)
  if isinstance(value, (tuple, list)):
    return '_'.join(format_value(v) for v in value) or 'empty'
  return _UNSAFE.sub('_', str(value)) or 'empty'


def shortened(name: str) -> str:
  """``name`` itself, or cut to ``MAX_NAME`` characters ending in a hash of the whole."""
  if len(name) <= MAX_NAME:
    return name
  return f'{name[:MAX_NAME - 11]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}'


def point_name(point: Mapping[str, Any]) -> str:
  """The directory name of ``point``: ``key=value`` pairs in key order, comma-joined.

  ``''`` for the empty point (no sweep). A name longer than ``MAX_NAME`` is cut and
  ends in a hash of the whole, so that it stays unique and a valid file name.
  """
  return shortened(','.join(f'{key}={format_value(point[key])}' for key in sorted(point)))


def point_names(points: Sequence[Mapping[str, Any]]) -> list[str]:
  """The directory name of each point; two points with one name are a ConfigError."""
  names = [point_name(p) for p in points]
  for name in set(names):
    if names.count(name) > 1:
      raise ConfigError(f'two sweep points would share the directory {name!r}: '
                        'make their values differ in letters, digits or ._+-')
  return names


def _parent(config: ml_collections.ConfigDict, key: str) -> tuple[ml_collections.ConfigDict, str]:
  node = config
  parts = key.split('.')
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = '.'.join(parts[:depth]) or 'the config'
      known = ', '.join(node.keys()) if isinstance(node, ml_collections.ConfigDict) else ''
      raise ConfigError(f'sweep key {key!r}: {where} has no field {part!r}'
                        + (f' (known: {known})' if known else ''))
    if depth < len(parts) - 1:
      node = node[part]
  return node, parts[-1]


def _kind(value: Any) -> str:
  name = type(value).__name__
  return f'{"an" if name[0] in "aeiou" else "a"} {name}'


def _checked(key: str, old: Any, value: Any) -> Any:
  """``value`` as ConfigDict would store it over ``old``; a ConfigError if it may not."""
  if isinstance(value, bool) and isinstance(old, (int, float)) and not isinstance(old, bool):
    raise ConfigError(f'sweep key {key!r} is {_kind(old)} field, got {value!r}')
  probe = ml_collections.ConfigDict({'value': old})
  try:
    probe.value = value
  except TypeError:
    raise ConfigError(f'sweep key {key!r} is {_kind(old)} field, got {value!r} '
                      f'({type(value).__name__})') from None
  return probe.value


def apply_point(config: ml_collections.ConfigDict,
                point: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A copy of ``config`` with each key of ``point`` set to its value.

  Raises:
    ConfigError: a key the config lacks, or a value of the wrong type, named.
  """
  result = copy.deepcopy(config)
  for key in point:
    check_key(key, 'sweep')
    parent, leaf = _parent(result, key)
    old = parent[leaf]
    try:
      parent[leaf] = _checked(key, old, point[key])
    except TypeError:
      raise ConfigError(f'sweep key {key!r} is {_kind(old)} field, got {point[key]!r}') from None
  return result


def sweep_points(config: ml_collections.ConfigDict, flag_values: Iterable[str] = (),
                 overridden: Iterable[str] = ()
                 ) -> tuple[ml_collections.ConfigDict, list[tuple[str, Point]]]:
  """The config without its ``sweep`` entry, and each point of the sweep with its name.

  ``flag_values`` are the ``--sweep`` flag's values, ``overridden`` the keys that
  ``--config.KEY`` overrides set (no sweep may). Every point is applied once here, so a bad
  key or value fails before anything runs. Without a sweep the one point is ``('', {})``:
  the runs go straight into WORKDIR.
  """
  base, config_axes = split_sweep(config)
  points = grid(merge_axes(axes_from_flags(flag_values), config_axes, overridden))
  for point in points:
    apply_point(base, point)
  return base, list(zip(point_names(points), points))


def jsonable(point: Mapping[str, Any]) -> dict[str, Any]:
  """``point`` for ``metadata.json``: tuples as lists."""
  def convert(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
      return [convert(v) for v in value]
    return value
  return {key: convert(value) for key, value in point.items()}
