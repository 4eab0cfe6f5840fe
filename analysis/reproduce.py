"""Runs the studies of ``make results`` afresh and records each (``analysis.results``).

For each study of ``analysis.results_studies.STUDIES`` asked for, in order, it deletes
``RUNS_DIR/<name>`` (a fresh run, never a resume of older code), runs ``python launch.py
--config=... --workdir=RUNS_DIR/<name>`` as a user would. When all have trained (so
that no run records this command's own output as uncommitted changes), it writes each
study's results files (``analysis.publish.write_results``): the command, its seconds, the
environment of the runs (``lr_study.runtime.environment``: CPU, the ISA XLA compiled for,
jaxlib, commit), the study table's rows (``analysis.study_results``, plus each variant's
batch sizes as trained), its warnings and one row per run; and draws the study's figures
(``analysis.figures``) into ``DOCS_DIR/figures/<dir>/``, removing its earlier figures
there first. The LR range test's CLR bounds (``analysis.lr_range_test.suggest_clr_bounds``,
4 significant digits) go, as overrides, to the ``lecture_raschka`` run after it, and to
``lecture_raschka_range.json``. Then ``analysis.trajectory`` draws
``DOCS_DIR/figures/trajectory``, and ``index.json`` records the whole command (its
seconds and environment; only when every study ran). Relative paths are the checkout's
(``launch.py``'s own).
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

from analysis.publish import write_results
from analysis.results_studies import (STUDIES, TRIANGULAR, Study, launch_args, shell_command,
                                      study_env)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT_KEYS = ('devices', 'cpu', 'host_cpus', 'xla_flags', 'packages', 'git', 'python')


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
  print(f'\n$ {" ".join(map(shlex.quote, argv))}', flush=True)
  subprocess.run(list(argv), cwd=ROOT, env=dict(env or os.environ), check=True)


def batch_sizes(group: Sequence[Any]) -> str:
  """A group's batch sizes as trained: ``64 → 256 → 1024``, or ``64 → … → 1024`` past 4
  sizes; seeds that differ show each. From the run's last plan (a dynamic
  schedule's re-plans keep the epochs done), else its metrics (B at each evaluation)."""
  texts = []
  for run in group:
    rows = (run.plan or {}).get('phases') or run.metrics
    sizes = [int(r['batch_size']) for r in rows if isinstance(r.get('batch_size'), int)]
    sizes = [b for i, b in enumerate(sizes) if i == 0 or b != sizes[i - 1]]
    if not sizes:
      continue
    texts.append(' → '.join(map(str, sizes)) if len(sizes) <= 4
                 else f'{sizes[0]} → … → {sizes[-1]}')
  return ' / '.join(dict.fromkeys(texts))


def record(study: Study, workdir: str, command: str, seconds: float) -> dict[str, Any]:
  """The results file of a finished study."""
  from analysis import runs as runs_lib  # pylint: disable=g-import-not-at-top
  from analysis import study_results  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import environment  # pylint: disable=g-import-not-at-top
  runs = study_results.finished_runs(workdir)
  if not runs:
    raise FileNotFoundError(f'{study.name}: no finished run under {workdir}')
  rows = study_results.table_rows(runs)
  for row, group in zip(rows, runs_lib.group_runs(runs).values()):
    row['batch sizes'] = batch_sizes(group)
  env = {key: (runs[0].metadata or {}).get(key) for key in ENVIRONMENT_KEYS}
  tested = [r.metrics[-1].get('test_examples') for r in runs if r.metrics]
  return {'name': study.name, 'config': study.config, 'command': command,
          'seconds': round(seconds, 1), 'environment': env,
          'environment_line': environment.describe(env),
          'test_examples': next((t for t in tested if isinstance(t, int)), None),
          'table': rows, 'notes': study_results.warnings(runs),
          'runs': [{k: v for k, v in row.items() if k != 'workdir'}
                   for row in study_results.run_rows(runs)]}


def clr_bounds(run_dir: str) -> dict[str, float]:
  """The CLR bounds of an LR range test's run, at 4 significant digits (as printed)."""
  from analysis import lr_range_test  # pylint: disable=g-import-not-at-top
  rows = lr_range_test.read_train_log(run_dir)
  window = lr_range_test.default_window(len(rows))
  base_lr, max_lr = lr_range_test.suggest_clr_bounds(
      [r['learning_rate'] for r in rows], [r['train_loss'] for r in rows], window=window)
  return {'base_lr': float(f'{base_lr:.4g}'), 'max_lr': float(f'{max_lr:.4g}'),
          'window': window}


def clr_flags(bounds: Mapping[str, float]) -> list[str]:
  """The ``launch.py`` overrides that train the triangular CLR between ``bounds``."""
  return [f'--config.{TRIANGULAR}.base_lr={bounds["base_lr"]!r}',
          f'--config.{TRIANGULAR}.max_lr={bounds["max_lr"]!r}']


def _figures(workdir: str, out_dir: str) -> None:
  from analysis import figures  # pylint: disable=g-import-not-at-top
  from analysis import runs as runs_lib  # pylint: disable=g-import-not-at-top
  for name in figures.FIGURES:  # a figure the logs no longer give must not stay behind
    for path in glob.glob(os.path.join(out_dir, f'{name}.*')):
      os.remove(path)
  for path in figures.make_figures(runs_lib.load_runs(workdir), out_dir):
    print(f'wrote {path}')


def _range_test_figure(bounds: Mapping[str, float], run_dir: str, docs_dir: str) -> None:
  from analysis import lr_range_test  # pylint: disable=g-import-not-at-top
  out = os.path.join(docs_dir, 'figures', 'lecture_raschka')
  os.makedirs(out, exist_ok=True)
  lr_range_test.plot(os.path.join(out, 'lr_range_test.png'),
                     lr_range_test.read_train_log(run_dir),
                     (bounds['base_lr'], bounds['max_lr']), bounds['window'])


def run_all(names: Sequence[str], runs_dir: str, docs_dir: str, *, mnist_dir: str | None,
            epochs_scale: float = 1.0, seeds: str | None = None) -> dict[str, Any]:
  """Runs the studies ``names`` (and the trajectories, with ``'trajectory'``), then writes
  their results files and figures; returns ``index.json``'s record.

  Every study trains before anything is written into ``docs_dir``, so that each run's
  recorded tree state (``git.dirty``) is the checkout's, not this command's own output."""
  from lr_study.runtime import environment  # pylint: disable=g-import-not-at-top
  started = time.monotonic()
  tree = environment.environment(with_devices=False)
  trained, bounds, range_dir = [], None, None
  for study in (s for s in STUDIES if s.name in names):
    workdir = os.path.join(runs_dir, study.name)
    shutil.rmtree(workdir, ignore_errors=True)
    extra = clr_flags(bounds) if study.name == 'lecture_raschka' and bounds else []
    args = launch_args(study, workdir, mnist_dir=mnist_dir, epochs_scale=epochs_scale,
                       seeds=seeds, extra=extra)
    begin = time.monotonic()
    _run([sys.executable, 'launch.py', *args], study_env(study))
    results = record(study, workdir, shell_command(study, args), time.monotonic() - begin)
    if study.name == 'lecture_raschka_range':
      range_dir = os.path.join(workdir, 'lr_range_test', f'seed_{(seeds or study.seeds)[0]}')
      bounds = results['bounds'] = clr_bounds(range_dir)
      results = {k: results[k] for k in ('name', 'config', 'command', 'seconds', 'environment',
                                         'environment_line', 'bounds', 'runs')}
    trained.append((study, workdir, results))
  for study, workdir, results in trained:
    write_results(docs_dir, study.name, results)
    if study.name == 'lecture_raschka_range':
      _range_test_figure(bounds, range_dir, docs_dir)
    if study.figures:
      _figures(workdir, os.path.join(docs_dir, 'figures', study.figures))
  done = [study.name for study, _, _ in trained]
  if 'trajectory' in names:
    _run([sys.executable, '-m', 'analysis.trajectory',
          f'--out_dir={os.path.join(docs_dir, "figures")}'])
    done.append('trajectory')
  index = {'command': 'make results', 'argv': sys.argv, 'studies': done,
           'seconds': round(time.monotonic() - started, 1), 'epochs_scale': epochs_scale,
           'environment': tree}
  if set(done) == {s.name for s in STUDIES} | {'trajectory'}:  # a whole run's time only
    write_results(docs_dir, 'index', index)
  return index
