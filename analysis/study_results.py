r"""The study table and figure, rebuilt from the run logs alone, over one or many studies.

    python -m analysis.study_results --workdir=runs/digits_study-20261121-120000
    python -m analysis.study_results --workdir=runs/a --workdir=runs/b --out_dir=runs/ab

reads every run under each WORKDIR (``analysis.runs``: ``<variant>/seed_<k>/`` of a
study, ``<point>/<variant>/seed_<k>/`` of a sweep) and writes to OUT_DIR (default: the
first WORKDIR):

* ``table.csv``: one row per run (pandas: ``pd.read_csv``), with ``workdir``,
  ``point`` (the sweep point's directory name, empty outside a sweep), one column per
  swept key (its dotted name, e.g. ``learning_rate``), ``variant``, ``seed``,
  ``status`` (``finished`` or ``diverged``), ``diverged_at_update``,
  ``final_test_accuracy`` (a fraction) and ``final_test_loss`` (empty for a diverged
  run), ``updates``, ``examples_seen``, ``epochs`` and ``wall_time`` (seconds);
* ``table.md``: one row per (swept values, variant), the final test accuracy as mean ±
  standard deviation over its seeds ("—" for one seed), with parameter updates, examples
  seen and wall time; a diverged run counts in no mean and is shown as "diverged at
  update U". Below the table, a warning for each variant whose plan drops more than 5% of
  each epoch (``lr_study.plan_table.dropped_warnings``) and for the variants of one point
  whose examples seen differ by more than 5% (unequal epochs), then the environment the
  runs came from (``lr_study.runtime.environment.describe``);
* ``figure.png`` and ``figure.pdf``: ``analysis.figures``' ``accuracy`` figure, test
  accuracy against epochs and against parameter updates (Smith et al. 2018, Figure 2).

The swept values of a run come from its metadata (``"sweep"``), else from its point's
directory name. Runs still training (no summary yet) are left out.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import sys
from typing import Any, Mapping, Sequence

from absl import app, flags

from analysis import metric_figures
from analysis import runs as runs_lib
from analysis.drawing import save
from analysis.runs import Run
from lr_study.errors import ConfigError
from lr_study.plan_table import MAX_DROPPED, dropped_warnings
from lr_study.runtime import environment, run_files
from lr_study.runtime.workdir import check_workdir

OUTPUTS = ('table.md', 'table.csv', 'figure.png', 'figure.pdf')
FIGURE = 'figure'
RUN_COLUMNS = ('variant', 'seed', 'status', 'diverged_at_update', 'final_test_accuracy',
               'final_test_loss', 'updates', 'examples_seen', 'epochs', 'wall_time')
TABLE_STATUSES = ('finished', 'diverged')


def finished_runs(workdirs: str | Sequence[str]) -> list[Run]:
  """The runs under ``workdirs`` that have a summary (finished or diverged)."""
  return [r for r in runs_lib.load_runs(workdirs) if r.status in TABLE_STATUSES]


def _sweep_columns(runs: Sequence[Run]) -> dict[str, str]:
  """Each swept key and its CSV column: the key, or ``sweep.<key>`` where it would
  collide with a run column."""
  taken = {'workdir', 'point', *RUN_COLUMNS}
  return {key: f'sweep.{key}' if key in taken else key for key in runs_lib.swept_keys(runs)}


def _cell(value: Any) -> Any:
  """A CSV cell: '' for None or a non-finite number, lists as their JSON-like text."""
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return ''
  if isinstance(value, (list, tuple)):
    return '(' + ', '.join(str(v) for v in value) + ')'
  return value


def run_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
  """One row per run, the CSV's columns in order."""
  sweep_columns = _sweep_columns(runs)
  rows = []
  for run in runs:
    summary = run.summary or {}
    row = {'workdir': run.workdir, 'point': run.point_name}
    row.update({column: run.point.get(key) for key, column in sweep_columns.items()})
    row.update({
        'variant': run.variant, 'seed': run.seed, 'status': run.status,
        'diverged_at_update': run.diverged_at_update,
        'final_test_accuracy': run.final('test_accuracy'),
        'final_test_loss': run.final('test_loss'),
        'updates': summary.get('updates'), 'examples_seen': summary.get('examples_seen'),
        'epochs': summary.get('epochs'), 'wall_time': summary.get('wall_time'),
    })
    rows.append(row)
  return rows


def format_csv(rows: Sequence[Mapping[str, Any]]) -> str:
  """``rows`` as CSV text with a plain header (empty cells for missing values)."""
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator='\n')
  writer.writeheader()
  writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
  return out.getvalue()


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _span(values: Sequence[Any], fmt: str) -> str:
  """The one value all runs share, or ``low–high``; '' when none is known."""
  known = sorted({v for v in values if isinstance(v, (int, float)) and math.isfinite(v)})
  if not known:
    return ''
  if len(known) == 1:
    return format(known[0], fmt)
  return f'{format(known[0], fmt)}–{format(known[-1], fmt)}'


def _accuracy_cell(group: Sequence[Run]) -> str:
  healthy = [100 * r.final('test_accuracy') for r in group if not r.diverged]
  healthy = [a for a in healthy if math.isfinite(a)]
  diverged = [r for r in group if r.diverged]
  parts = []
  if healthy:
    mean, std = _mean_std(healthy)
    spread = f'{std:.2f}' if len(healthy) > 1 else '—'  # one seed has no spread
    parts.append(f'{mean:.2f} ± {spread}'
                 + (f' ({len(healthy)} seed{"s" * (len(healthy) > 1)})' if diverged else ''))
  for run in diverged:
    update = run.diverged_at_update
    where = f'diverged at update {update:,}' if update is not None else 'diverged'
    parts.append(where if len(group) == 1 else f'seed {run.seed} {where}')
  return '; '.join(parts)


def table_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
  """One row per (sweep point, variant): the markdown table's cells."""
  keys = runs_lib.swept_keys(runs)
  rows = []
  for group in runs_lib.group_runs(runs).values():
    summaries = [r.summary or {} for r in group]
    healthy = [s for r, s in zip(group, summaries) if not r.diverged] or summaries
    rows.append({
        **{key: _point_text(group[0].point.get(key)) for key in keys},
        'schedule': group[0].variant,
        'final test accuracy (%)': _accuracy_cell(group),
        'seeds': str(len(group)),
        'epochs': _span([s.get('epochs') for s in healthy], ''),
        'parameter updates': _span([s.get('updates') for s in healthy], ','),
        'examples seen': _span([s.get('examples_seen') for s in healthy], ','),
        'wall time (s)': _wall_time([s.get('wall_time') for s in summaries]),
    })
  return rows


def _point_text(value: Any) -> str:
  if value is None:
    return ''
  return str(_cell(value))


def _wall_time(values: Sequence[Any]) -> str:
  known = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
  return f'{statistics.fmean(known):.1f}' if known else ''


def format_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
  """``rows`` as a markdown table (mean ± standard deviation over seeds)."""
  header = list(rows[0])
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines.extend('| ' + ' | '.join(str(row[h]) for h in header) + ' |' for row in rows)
  return '\n'.join(lines)


def warnings(runs: Sequence[Run]) -> list[str]:
  """Unequal epochs: each group whose plan drops more than ``MAX_DROPPED`` of each epoch,
  and each sweep point whose variants' examples seen differ by more than that."""
  lines = []
  by_point: dict[str, list[tuple[str, float]]] = {}
  for (point, _), group in runs_lib.group_runs(runs).items():
    plan = next((r.plan for r in group if r.plan), None)
    lines += [f'{line[:9]}{group[0].label}: {line[9:]}' for line in dropped_warnings(plan or {})]
    seen = [(r.summary or {}).get('examples_seen') for r in group if not r.diverged]
    seen = [v for v in seen if isinstance(v, (int, float)) and v > 0]
    if seen:
      by_point.setdefault(point, []).append((group[0].variant, statistics.fmean(seen)))
  for point, seen in by_point.items():
    (low_name, low), (high_name, high) = min(seen, key=lambda v: v[1]), max(seen, key=lambda v: v[1])
    if high > (1 + MAX_DROPPED) * low:
      where = f'{point}: ' if point else ''
      lines.append(f'warning: {where}{low_name} sees {low:,.0f} examples, {high_name} '
                   f'{high:,.0f}: {100 * (high / low - 1):.1f}% more, over '
                   f'{100 * MAX_DROPPED:g}% (unequal epochs)')
  return lines


def environments(runs: Sequence[Run]) -> list[str]:
  """Each distinct environment the runs came from (their metadata), as a line."""
  found = [environment.describe(r.metadata) for r in runs
           if (r.metadata or {}).get('cpu') is not None or (r.metadata or {}).get('devices')]
  return [f'environment: {line}' for line in dict.fromkeys(found)]


def format_notes(runs: Sequence[Run]) -> str:
  """The lines below the table: warnings, then environments ('' when none)."""
  return '\n'.join(warnings(runs) + environments(runs))


def write_study_outputs(workdirs: str | Sequence[str], out_dir: str | None = None) -> str:
  """Writes table.md, table.csv, figure.png and figure.pdf; returns the markdown table
  with the notes below it (:func:`format_notes`).

  ``workdirs``: one study directory or several; ``out_dir`` defaults to the first.

  Raises:
    FileNotFoundError: no finished run under ``workdirs``.
    ConfigError: one line naming a file or line that is not JSON, or an ``out_dir`` that
      cannot be written.
  """
  if isinstance(workdirs, str):
    workdirs = [workdirs]
  runs = finished_runs(workdirs)
  if not runs:
    raise FileNotFoundError(f'no finished runs under {", ".join(workdirs)}')
  out_dir = check_workdir((out_dir or workdirs[0]).rstrip('/'),
                          flag='--out_dir' if out_dir else '--workdir')
  notes = format_notes(runs)
  table = format_markdown(table_rows(runs)) + (f'\n\n{notes}' if notes else '')
  run_files.write_atomic(f'{out_dir}/table.md', table + '\n')
  run_files.write_atomic(f'{out_dir}/table.csv', format_csv(run_rows(runs)))
  figure = metric_figures.accuracy_figure(runs)
  if figure is not None:
    save(figure, out_dir, FIGURE)
  return table


def main(argv: list[str]) -> None:
  del argv
  try:
    print(write_study_outputs(flags.FLAGS.workdir, flags.FLAGS.out_dir))
  except (ConfigError, OSError) as e:  # FileNotFoundError among them
    print(f'analysis.study_results: error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  flags.DEFINE_multi_string('workdir', None, 'A study directory written by launch.py '
                            '(repeat for several).', required=True)
  flags.DEFINE_string('out_dir', None, 'Where the table and figure go (default: the first '
                      'WORKDIR).')
  app.run(main)
