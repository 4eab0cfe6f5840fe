"""Split strings, resolved without TensorFlow: the ranges of examples a split reads.

``dataset.train_split`` and ``dataset.test_split`` are TFDS split strings
(https://www.tensorflow.org/datasets/splits): a split name, optionally sliced by example
counts or percentages, and parts joined by ``+``: ``'train'``, ``'train[:10%]'``,
``'test[-500:]'``, ``'train[:5000]+test[:1000]'``. They resolve here to absolute ranges
``(split, start, stop)`` as TFDS resolves them (percentages rounded to the closest
example, negative bounds counted from the end; a test checks the two agree), so a dataset
read with NumPy takes the same examples as one read through TFDS. Shard slices and
``'all'`` are TFDS's alone.

A process of a multi-host run reads its own part of each range, as
``tfds.split_for_jax_process`` cuts it (:func:`process_ranges`).
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from lr_study.errors import ConfigError

SplitRange = tuple[str, int, int]  # (split name, start, stop)

_PART = re.compile(r'^(?P<name>[\w-]+)(\[(?P<start>[-\d.]*%?):(?P<stop>[-\d.]*%?)\])?$')


def _bound(text: str, percent: bool, size: int, default: int) -> int:
  """One slice bound of a split of ``size`` examples, as TFDS reads it."""
  text = text.rstrip('%')
  if not text:
    return default
  return int(round(float(text) * size / 100.0)) if percent else int(text)


def _resolve_part(part: str, sizes: Mapping[str, int]) -> SplitRange:
  match = _PART.match(part)
  if match is None or match['start'] == match['stop'] == '':
    raise ValueError(f'Error parsing split {part!r}')
  name = match['name']
  if name not in sizes:
    raise ValueError(f'Unknown split {name!r}. Should be one of {list(sizes)}.')
  size, percent = sizes[name], '%' in (match['start'] or '') + (match['stop'] or '')
  try:
    start = _bound(match['start'] or '', percent, size, 0)
    stop = _bound(match['stop'] or '', percent, size, size)
  except ValueError:
    raise ValueError(f'Error parsing split {part!r}') from None
  if abs(start) > size or abs(stop) > size:
    raise ValueError(f'Requested slice [{start or ""}:{stop or ""}] incompatible with '
                     f'{size} examples.')
  return name, start + size if start < 0 else start, stop + size if stop < 0 else stop


def resolve_split(field: str, value: str, dataset: str, sizes: Mapping[str, int]
                  ) -> tuple[SplitRange, ...]:
  """The absolute ranges that split string ``value`` reads, concatenated in order; empty
  parts are left out.

  Raises:
    ConfigError: naming ``dataset.<field>`` when ``value`` is not a split string of the
      splits ``sizes`` names, or selects no example.
  """
  try:
    ranges = tuple(_resolve_part(part, sizes) for part in re.split(r'\s*\+\s*', str(value)))
  except ValueError as e:
    raise ConfigError(f'dataset.{field} {value!r} is not a split of {dataset}: {e}') from None
  ranges = tuple(r for r in ranges if r[2] > r[1])
  if not ranges:
    raise ConfigError(f'dataset.{field} {value!r} selects no examples of {dataset}')
  return ranges


def cut_ranges(ranges: tuple[SplitRange, ...], start: int, stop: int
               ) -> tuple[SplitRange, ...]:
  """Positions ``[start, stop)`` of the concatenation of ``ranges``, as ranges."""
  cut, offset = [], 0
  for name, first, end in ranges:
    lo, hi = max(first, first + start - offset), min(end, first + stop - offset)
    if lo < hi:
      cut.append((name, lo, hi))
    offset += end - first
  return tuple(cut)


def split_string(ranges: tuple[SplitRange, ...]) -> str:
  """The split string of ``ranges``: ``'train[0:5400]+test[0:100]'``."""
  return '+'.join(f'{name}[{start}:{stop}]' for name, start, stop in ranges)


def num_examples(ranges: tuple[SplitRange, ...]) -> int:
  return sum(stop - start for _, start, stop in ranges)


def process_ranges(ranges: tuple[SplitRange, ...], process_index: int, process_count: int,
                   drop_remainder: bool) -> tuple[SplitRange, ...]:
  """Process ``process_index``'s part of each range, as ``tfds.even_splits`` cuts it: an
  equal share each, the remainder dropped or spread one each over the first processes."""
  parts = []
  for name, start, stop in ranges:
    share, remainder = divmod(stop - start, process_count)
    lo, hi = start + share * process_index, start + share * (process_index + 1)
    if not drop_remainder:
      lo, hi = lo + min(process_index, remainder), hi + min(process_index + 1, remainder)
    parts.append((name, lo, hi))  # empty where a range has fewer examples than processes
  return tuple(parts)


def take(arrays: Mapping[str, np.ndarray], ranges: tuple[SplitRange, ...]) -> np.ndarray:
  """The examples of ``ranges`` from whole splits ``arrays`` (split name -> array)."""
  return np.concatenate([arrays[name][start:stop] for name, start, stop in ranges])
