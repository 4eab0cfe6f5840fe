"""What one session of a study trains: each run's progress before it, one line after.

    before = session.progress(config, workdir)
    summaries = lr_study.run(config, workdir)
    print(session.summary(before, summaries, workdir))

``lr_study.run`` starts a run, resumes it from its newest checkpoint, or skips it when
it has finished; the line says which, and how many updates this session trained:
``Trained 2,529 updates in this session: 1 run(s) started, 1 resumed from a checkpoint,
2 already finished.`` or ``Nothing trained: all 4 runs had already finished in W.``
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import ml_collections

from lr_study import study
from lr_study.runtime import run_files

Progress = Mapping[tuple[str, int], tuple[int, bool]]  # (variant, seed) -> (updates, finished)


def run_progress(run_dir: str) -> tuple[int, bool]:
  """(updates held, finished) of a run directory: its summary's, else its newest
  checkpoint's step, else (0, False)."""
  summary = f'{run_dir}/{run_files.SUMMARY}'
  if run_files.exists(summary):
    return run_files.read_json(summary)['updates'], True
  checkpoints = f'{run_dir}/{run_files.CHECKPOINTS}'
  steps = run_files.listdir(checkpoints) if run_files.isdir(checkpoints) else []
  return max((int(s.rstrip('/')) for s in steps if s.rstrip('/').isdigit()), default=0), False


def progress(config: ml_collections.ConfigDict, workdir: str) -> Progress:
  """:func:`run_progress` of every run of the study ``config`` under ``workdir``."""
  return {(name, seed): run_progress(f'{workdir.rstrip("/")}/{name}/seed_{seed}')
          for name, seed in study.run_names(config)}


def summary(before: Progress, summaries: Sequence[Mapping[str, Any]], workdir: str) -> str:
  """One line: the updates this session trained and the runs it started, resumed or found
  finished (``before``: :func:`progress` before the session; ``summaries``: what
  ``lr_study.run`` returned)."""
  trained = sum(s['updates'] for s in summaries) - sum(u for u, _ in before.values())
  finished = sum(done for _, done in before.values())
  resumed = sum(updates > 0 and not done for updates, done in before.values())
  if trained == 0 and finished == len(before):
    return f'Nothing trained: all {len(before)} runs had already finished in {workdir}.'
  return (f'Trained {trained:,} updates in this session: {len(before) - finished - resumed} '
          f'run(s) started, {resumed} resumed from a checkpoint, {finished} already finished.')
