"""Running a sweep (``lr_study.sweep``'s points): where it goes, and shards of it.

Without ``--workdir``, a sweep gets a folder of its own beside the base study's
(:func:`sweep_workdir`: ``runs/digits_study-sweep=batch_size,learning_rate``), never one
inside it, so that the base study's tables and figures read only its own runs.

**Shards.** ``--sweep_shard=i/n`` (0 <= i < n) runs only the points whose index in the
grid's order is ``i`` mod ``n`` (:func:`select_shard`): the same flags give every shard the
same share, and the n shards together run every point once. They may run at the same
time into one WORKDIR (background processes, a SLURM job array with
``--sweep_shard=$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``, several VMs sharing a
``gs://`` WORKDIR): each run directory is taken by one process at a time (the run lock,
``lr_study.runtime.lock``), so a shard started twice trains nothing twice. The shard that
finds every run of the sweep finished writes the sweep's table and figure
(:func:`all_finished`); ``python -m analysis.study_results --workdir=WORKDIR`` makes the
same table at any time.

Errors are one-line ``lr_study.errors.ConfigError`` messages. This module imports no jax.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import ml_collections

from lr_study import study
from lr_study.errors import ConfigError
from lr_study.runtime import run_files
from lr_study.sweep import Point, apply_point, shortened

Shard = tuple[int, int]  # (index, count)


def parse_shard(text: str | None) -> Shard | None:
  """``--sweep_shard=i/n`` as ``(i, n)``, 0 <= i < n; None for no flag."""
  if text is None:
    return None
  match = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', text)
  index, count = (int(match.group(1)), int(match.group(2))) if match else (-1, 0)
  if not match or count < 1 or index >= count:
    raise ConfigError(f'--sweep_shard={text}: expected i/n with 0 <= i < n, e.g. 0/4 for the '
                      'first of 4 shards')
  return index, count


def select_shard(points: Sequence[tuple[str, Point]],
                 shard: Shard | None) -> list[tuple[str, Point]]:
  """The points of shard ``(i, n)``: those whose index in ``points`` is i mod n (all for
  None). A ConfigError where there is no sweep, or a shard would get no point."""
  if shard is None:
    return list(points)
  index, count = shard
  if points == [('', {})]:
    raise ConfigError('--sweep_shard needs a sweep (--sweep=KEY=v1,v2,... or config.sweep)')
  if count > len(points):
    raise ConfigError(f'--sweep_shard={index}/{count}: the sweep has {len(points)} point(s), '
                      f'so at most {len(points)} shards')
  return [p for k, p in enumerate(points) if k % count == index]


def sweep_workdir(base_workdir: str, points: Sequence[tuple[str, Point]]) -> str:
  """The default WORKDIR of a sweep: ``<base>-sweep=<its keys, comma-joined>`` beside the
  base study's ``<base>`` (the base itself without a sweep)."""
  keys = sorted({key for _, point in points for key in point})
  if not keys:
    return base_workdir
  return f'{base_workdir.rstrip("/")}-sweep={shortened(",".join(keys))}'


def all_finished(workdir: str, base: ml_collections.ConfigDict,
                 points: Sequence[tuple[str, Point]]) -> bool:
  """Whether every run of every point (all shards) has its ``summary.json`` under
  ``workdir``."""
  for name, point in points:
    for variant, seed in study.run_names(apply_point(base, point)):
      path = os.path.join(workdir, name, variant, f'seed_{seed}', run_files.SUMMARY)
      if not run_files.exists(path):
        return False
  return True
