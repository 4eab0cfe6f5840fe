"""The fingerprint of a resolved config, and what differs between two configs.

A run directory records the config it was run with; a resume under another config
would mix two experiments in one set of logs. ``fingerprint`` hashes the canonical JSON
of ``config.to_dict()``, leaving out keys that do not change a run's results (given by
dotted path; ``NOT_RESULTS`` is a default); ``check_same`` compares a recorded config
with the current one and names the first keys that differ, in one line::

    run_dir runs/x/decay/seed_0 was run with a different config: learning_rate 0.05 -> 0.5,
    model.widths (128, 128) -> (256,)

Values compare as their canonical JSON: tuples and lists alike (a config read back from
a JSON file equals the ConfigDict it came from), ``1`` and ``1.0`` apart.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

from lr_study.errors import ConfigError
from lr_study.runtime import strict_json

# Keys that name a study's runs or where its files are, or how often it logs: none of them
# changes a run's updates. The caller adds its own (e.g. 'num_epochs' to let a resume
# extend a run).
NOT_RESULTS = ('seeds', 'variants', 'run_variants', 'train_log_every_updates',
               'checkpoint_every_epochs', 'checkpoints_to_keep', 'updates_per_dispatch',
               'dataset.data_dir', 'dataset.manual_dir', 'dataset.download')
SHOWN = 3  # differences a message names before "and N more"
ABSENT = object()  # a key missing on one side of a difference


def _config_value(value: Any, path: str) -> Any:
  """A nested ConfigDict as JSON values; a ConfigError for any other object."""
  if hasattr(value, 'to_dict'):
    return _plain(value.to_dict(), path)
  raise ConfigError(f'config value {path or "."} of type {type(value).__name__} has no JSON '
                    'form to fingerprint')


def _plain(value: Any, path: str = '') -> Any:
  """``value`` as JSON values; a non-finite float as its name, the string 'NaN' or
  'Infinity' (``strict_json.plain``)."""
  return strict_json.plain(value, lambda name: name, _config_value, path)


def canonical(config: Any, exclude: Iterable[str] = NOT_RESULTS) -> dict[str, Any]:
  """``config`` (a ConfigDict or its ``to_dict()``) as plain JSON values, without the
  keys (dotted paths) in ``exclude``."""
  plain = _plain(config)
  for path in exclude:
    *parents, last = path.split('.')
    node = plain
    for key in parents:
      node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
      node.pop(last, None)
  return plain


def fingerprint(config: Any, exclude: Iterable[str] = NOT_RESULTS) -> str:
  """The SHA-256 (hex) of ``config``'s canonical JSON, ``exclude`` left out."""
  return hashlib.sha256(strict_json.canonical(canonical(config, exclude)).encode()).hexdigest()


def differences(old: Any, new: Any,
                exclude: Iterable[str] = NOT_RESULTS) -> list[tuple[str, Any, Any]]:
  """(dotted path, old value, new value) of every leaf that differs, by path; a value
  missing on one side is ``ABSENT`` there. Lists are leaves."""
  exclude = tuple(exclude)
  found: list[tuple[str, Any, Any]] = []

  def walk(a: Any, b: Any, path: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
      for key in sorted(set(a) | set(b)):
        walk(a.get(key, ABSENT), b.get(key, ABSENT), f'{path}.{key}' if path else key)
    elif a is ABSENT or b is ABSENT or strict_json.canonical(a) != strict_json.canonical(b):
      found.append((path, a, b))

  walk(canonical(old, exclude), canonical(new, exclude), '')
  return found


def _show(value: Any) -> str:
  if value is ABSENT:
    return '<absent>'
  if isinstance(value, list):
    items = [_show(v) for v in value]
    return f'({items[0]},)' if len(items) == 1 else f'({", ".join(items)})'
  if isinstance(value, dict):
    return '{' + ', '.join(f'{k!r}: {_show(v)}' for k, v in sorted(value.items())) + '}'
  return repr(value)


def describe(diffs: list[tuple[str, Any, Any]], shown: int = SHOWN) -> str:
  """``'learning_rate 0.05 -> 0.5, model.widths (128, 128) -> (256,)'``: the first
  ``shown`` differences, then how many more."""
  text = ', '.join(f'{path} {_show(a)} -> {_show(b)}' for path, a, b in diffs[:shown])
  more = len(diffs) - shown
  return text + (f' and {more} more' if more > 0 else '')


def check_same(run_dir: str, recorded: Any, current: Any,
               exclude: Iterable[str] = NOT_RESULTS) -> None:
  """A one-line ConfigError naming the first keys that differ, if ``run_dir`` was run
  with another config (``recorded``) than ``current``."""
  diffs = differences(recorded, current, exclude)
  if diffs:
    raise ConfigError(f'run_dir {run_dir} was run with a different config: {describe(diffs)}')
