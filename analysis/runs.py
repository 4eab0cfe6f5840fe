"""The runs of one or many study directories, read from their logs alone.

A run directory holds any of the files a run writes (``RUN_FILES``, named in
``lr_study.runtime.run_files``: the metrics, train log and schedule events logs, the plan,
the metadata and the summary; README, "What a run writes"). Under a WORKDIR they lie at

* ``WORKDIR/<variant>/seed_<k>/``, a study;
* ``WORKDIR/<point>/<variant>/seed_<k>/``, one point of a sweep (``lr_study.sweep``):
  the swept values come from the metadata's ``"sweep"``, else from the point's
  directory name;
* ``WORKDIR/<variant>/`` holding only a plan, a dry run (``launch.py --dry_run``).

Several WORKDIRs pool their runs of one (sweep point, variant) as more seeds (seeds 0–2
in one, 3–9 in another) when their configs agree; where the configs differ, each
WORKDIR's runs form a point of their own, ``{'study': <WORKDIR's name>}``.

Status: ``finished`` (a summary without a status, or ``"status": "finished"``),
``diverged`` (``"status": "diverged"``, with ``"diverged_at_update"``), ``running`` (logs
but no summary yet) or ``planned`` (a plan only). JSON ``null`` (a non-finite number)
reads as NaN wherever a number is asked for. A log line that is not JSON, or a run file that
is not, is a one-line ``ConfigError`` naming the file and line; a torn last line (a run
stopped while writing it) is skipped with a warning naming it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from lr_study import sweep
from lr_study.runtime import run_files
from lr_study.runtime.run_files import (EVENTS, METADATA, METRICS, PLAN, STUDY_CONFIG, SUMMARY,
                                        TRAIN_LOG, isdir, listdir)

RUN_FILES = (METRICS, TRAIN_LOG, EVENTS, PLAN, METADATA, SUMMARY)
MAX_DEPTH = 4  # WORKDIR/<point>/<variant>/seed_<k>: deeper folders are not looked into

_SEED_DIR = re.compile(r'seed_(\d+)\Z')


def number(value: Any) -> float:
  """``value`` as a float: NaN for ``None`` (JSON's null for a non-finite number),
  a missing value, or anything that is not a number."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return math.nan
  return float(value)


@dataclasses.dataclass
class Run:
  """One run's logs, as read from its directory."""
  workdir: str
  run_dir: str
  variant: str
  seed: int | None
  point: dict[str, Any]  # the swept values of its sweep point; {} outside a sweep
  point_name: str  # its sweep point's directory name; '' outside a sweep
  summary: dict[str, Any] | None = None
  metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  train_log: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  plan: dict[str, Any] | None = None
  metadata: dict[str, Any] | None = None

  @property
  def status(self) -> str:
    """``finished``, ``diverged``, ``running`` or ``planned`` (see the module docstring)."""
    if self.summary is not None:
      return str(self.summary.get('status') or 'finished')
    return 'running' if (self.metrics or self.train_log) else 'planned'

  @property
  def diverged(self) -> bool:
    return self.status == 'diverged'

  @property
  def diverged_at_update(self) -> int | None:
    """The update at which a diverged run stopped (from its summary; else its last log)."""
    if not self.diverged:
      return None
    update = self.summary.get('diverged_at_update')
    if isinstance(update, (int, float)) and not isinstance(update, bool):
      return int(update)
    rows = self.metrics or self.train_log
    return int(rows[-1]['update']) if rows else None

  @property
  def config(self) -> dict[str, Any]:
    """The run's resolved config (from its metadata), or {} when it has none."""
    return dict((self.metadata or {}).get('config') or {})

  @property
  def group(self) -> tuple[str, str]:
    """(sweep point name, variant): the runs that differ only in their seed."""
    return self.point_name, self.variant

  @property
  def label(self) -> str:
    """The group as people read it: ``variant`` or ``point: variant``."""
    return f'{self.point_name}: {self.variant}' if self.point_name else self.variant

  def rows(self, source: str) -> list[dict[str, Any]]:
    """The rows of ``metrics`` or ``train_log``; a diverged run's up to its divergence."""
    rows = self.metrics if source == 'metrics' else self.train_log
    stop = self.diverged_at_update
    if stop is None:
      return rows
    return [r for r in rows if number(r.get('update')) <= stop]

  def final(self, key: str) -> float:
    """The summary's ``final_<key>``, else the last logged ``key``; NaN if diverged."""
    if self.diverged:
      return math.nan
    if self.summary is not None and f'final_{key}' in self.summary:
      return number(self.summary[f'final_{key}'])
    return number(self.metrics[-1].get(key)) if self.metrics else math.nan


def _read_json(path: str) -> Any:
  try:
    return run_files.read_json(path)
  except (FileNotFoundError, NotADirectoryError):
    return None


def _is_run_dir(names: Iterable[str]) -> bool:
  return any(name in RUN_FILES for name in names)


def _run_dirs(workdir: str) -> list[str]:
  """Every run directory under ``workdir`` (a dry run's plan-only variant directory
  only where it holds no run directory itself), in path order."""
  found = []

  def visit(path: str, depth: int) -> bool:
    names = listdir(path)
    below = False
    if depth < MAX_DEPTH:
      for name in names:
        child = f'{path.rstrip("/")}/{name}'
        if name not in RUN_FILES and isdir(child):
          below = visit(child, depth + 1) or below
    if depth > 0 and _is_run_dir(names) and not (below and set(names) & set(RUN_FILES) == {PLAN}):
      found.append(path)
      return True
    return below

  visit(workdir.rstrip('/') or '/', 0)
  return sorted(found)


def _point_of(parts: Sequence[str], metadata: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
  name = '/'.join(parts)
  recorded = (metadata or {}).get('sweep')
  if isinstance(recorded, Mapping) and recorded:
    return dict(recorded), name or sweep.point_name(recorded)
  return ({'study': name} if name else {}), name


def load_run(workdir: str, run_dir: str) -> Run:
  """The run in ``run_dir``, a directory under study directory ``workdir``."""
  rel = [p for p in run_dir[len(workdir.rstrip('/')):].split('/') if p]
  seed_match = _SEED_DIR.match(rel[-1]) if rel else None
  variant_parts = rel[:-1] if seed_match else rel
  metadata = _read_json(f'{run_dir}/{METADATA}')
  summary = _read_json(f'{run_dir}/{SUMMARY}')
  config = (metadata or {}).get('config') or {}
  variant = ((summary or {}).get('variant') or config.get('variant')
             or (variant_parts[-1] if variant_parts else os.path.basename(workdir.rstrip('/'))))
  seed = (summary or {}).get('seed', (metadata or {}).get('seed'))
  if seed is None and seed_match:
    seed = int(seed_match.group(1))
  point, point_name = _point_of(variant_parts[:-1], metadata)
  log = lambda name: run_files.read_jsonl(f'{run_dir}/{name}', warn=_warn)
  return Run(workdir=workdir, run_dir=run_dir, variant=str(variant),
             seed=None if seed is None else int(seed), point=point, point_name=point_name,
             summary=summary, metrics=log(METRICS), train_log=log(TRAIN_LOG), events=log(EVENTS),
             plan=_read_json(f'{run_dir}/{PLAN}'), metadata=metadata)


def _warn(text: str) -> None:
  print(f'warning: {text}', file=sys.stderr)


def point_order(point: Mapping[str, Any]) -> tuple[Any, ...]:
  """A sort key for sweep points: by key, numbers by value before other values."""
  def value_key(value: Any) -> tuple[int, Any]:
    number_ = number(value)
    return (0, number_, '') if math.isfinite(number_) else (1, 0.0, str(value))
  return tuple((key, *value_key(point[key])) for key in sorted(point))


def _variant_order(workdir: str) -> list[str]:
  """The study's run order of variants: its study config's ``run_variants``
  (``run_files.STUDY_CONFIG``), or (a sweep) those of its points' study configs, in
  point order."""
  root = workdir.rstrip('/')
  configs = [f'{root}/{STUDY_CONFIG}'] + [f'{root}/{name}/{STUDY_CONFIG}'
                                           for name in listdir(root)
                                           if isdir(f'{root}/{name}')]
  order: list[str] = []
  for path in configs:
    study = _read_json(path)
    for variant in (study or {}).get('run_variants') or ():
      if variant not in order:
        order.append(variant)
  return order


def load_runs(workdirs: str | Sequence[str]) -> list[Run]:
  """Every run under ``workdirs``: by workdir, sweep point, variant (in each study's
  run order, then by name) and seed.

  Raises:
    FileNotFoundError: a workdir that is not a directory.
  """
  if isinstance(workdirs, str):
    workdirs = [workdirs]
  runs = []
  for workdir in workdirs:
    if not isdir(workdir):
      raise FileNotFoundError(f'{workdir} is not a directory')
    order = _variant_order(workdir)
    found = [load_run(workdir, d) for d in _run_dirs(workdir)]
    rank = {v: i for i, v in enumerate(order)}
    found.sort(key=lambda r: (point_order(r.point), r.point_name, rank.get(r.variant, len(rank)),
                              r.variant, -1 if r.seed is None else r.seed))
    runs.extend(found)
  return _separate_studies(runs)


def _comparable(config: Mapping[str, Any]) -> str:
  """A run's config without what may differ between seeds or machines of one study."""
  config = {k: v for k, v in config.items() if k not in ('seeds', 'seed')}
  if isinstance(config.get('dataset'), Mapping):
    config['dataset'] = {k: v for k, v in config['dataset'].items()
                         if k not in ('data_dir', 'manual_dir', 'download')}
  return json.dumps(config, sort_keys=True, default=str)


def _separate_studies(runs: list[Run]) -> list[Run]:
  """Runs of one (point, variant) from several workdirs pool as more seeds when their
  configs agree; where they differ, each workdir's runs become a point of their own,
  named by the workdir (``{'study': name}``)."""
  for group in group_runs(runs).values():
    workdirs = {r.workdir for r in group}
    if len(workdirs) < 2 or len({_comparable(r.config) for r in group}) < 2:
      continue
    for run in group:
      study = os.path.basename(run.workdir.rstrip('/'))
      run.point = {'study': study, **run.point}
      run.point_name = f'{study}/{run.point_name}' if run.point_name else study
  return runs


def group_runs(runs: Iterable[Run], statuses: Sequence[str] | None = None
               ) -> dict[tuple[str, str], list[Run]]:
  """The runs by ``Run.group``, in first-seen order; only ``statuses`` when given."""
  groups: dict[tuple[str, str], list[Run]] = {}
  for run in runs:
    if statuses is None or run.status in statuses:
      groups.setdefault(run.group, []).append(run)
  return groups


def swept_keys(runs: Iterable[Run]) -> list[str]:
  """Every swept key of ``runs``, in key order."""
  return sorted({key for run in runs for key in run.point})


def column(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
  """``key`` of each row as floats (NaN for null or missing)."""
  return np.array([number(r.get(key)) for r in rows], dtype=float)
