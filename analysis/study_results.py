r"""The study table and figure, rebuilt from the run logs alone.

    python -m analysis.study_results --workdir=runs/digits_study-20261121-120000

reads ``WORKDIR/<variant>/seed_<k>/{metrics.jsonl,summary.json}`` and writes
``table.md``, ``table.csv`` and ``figure.png`` to WORKDIR: per schedule, the mean and
standard deviation over seeds of the final test accuracy, with the parameter updates,
examples seen and wall time; and test accuracy against epochs and against parameter
updates, one curve per schedule (Smith et al. 2018, Figure 2).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import statistics
from typing import Any, Sequence

from absl import app, flags

from lr_study.runtime import run_files

OUTPUTS = ('table.md', 'table.csv', 'figure.png')


@dataclasses.dataclass
class Run:
  variant: str
  seed: int
  summary: dict[str, Any]
  metrics: list[dict[str, Any]]


def load_runs(workdir: str) -> dict[str, list[Run]]:
  """The finished runs under ``workdir``, by variant, in the study's run order."""
  order = []
  config_path = os.path.join(workdir, 'study_config.json')
  if os.path.exists(config_path):
    order = list(run_files.read_json(config_path).get('run_variants', ()))
  found = sorted(d for d in os.listdir(workdir) if os.path.isdir(os.path.join(workdir, d)))
  runs: dict[str, list[Run]] = {}
  for variant in [v for v in order if v in found] + [v for v in found if v not in order]:
    vdir = os.path.join(workdir, variant)
    for seed_dir in sorted(os.listdir(vdir)):
      summary_path = os.path.join(vdir, seed_dir, run_files.SUMMARY)
      if not os.path.exists(summary_path):
        continue
      summary = run_files.read_json(summary_path)
      runs.setdefault(variant, []).append(Run(
          variant, int(summary['seed']), summary,
          run_files.read_jsonl(os.path.join(vdir, seed_dir, run_files.METRICS))))
  return runs


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table_rows(runs: dict[str, list[Run]]) -> list[dict[str, Any]]:
  rows = []
  for variant, vruns in runs.items():
    acc, acc_std = _mean_std([100 * r.summary['final_test_accuracy'] for r in vruns])
    rows.append({
        'schedule': variant, 'seeds': len(vruns),
        'test_accuracy_mean': acc, 'test_accuracy_std': acc_std,
        'epochs': vruns[0].summary['epochs'],
        'updates': vruns[0].summary['updates'],
        'examples_seen': vruns[0].summary['examples_seen'],
        'wall_time_s': statistics.fmean(r.summary['wall_time'] for r in vruns),
    })
  return rows


def format_markdown(rows: list[dict[str, Any]]) -> str:
  lines = ['| schedule | final test accuracy (%) | seeds | epochs | parameter updates | '
           'examples seen | wall time (s) |', '|---|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f"| {r['schedule']} | {r['test_accuracy_mean']:.2f} ± {r['test_accuracy_std']:.2f} "
                 f"| {r['seeds']} | {r['epochs']} | {r['updates']:,} | {r['examples_seen']:,} "
                 f"| {r['wall_time_s']:.1f} |")
  return '\n'.join(lines)


def format_csv(rows: list[dict[str, Any]]) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(rows[0]))
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


def plot_study(runs: dict[str, list[Run]], path: str) -> None:
  """Test accuracy against epochs and against parameter updates; mean over seeds with its
  range shaded."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
  for variant, vruns in runs.items():
    length = min(len(r.metrics) for r in vruns)
    acc = 100 * np.array([[m['test_accuracy'] for m in r.metrics[:length]] for r in vruns])
    for ax, key in zip(axes, ('epoch', 'update')):
      x = np.array([m[key] for m in vruns[0].metrics[:length]])
      line, = ax.plot(x, acc.mean(0), label=variant)
      if len(vruns) > 1:
        ax.fill_between(x, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.2)
  axes[0].set_xlabel('epochs')
  axes[1].set_xlabel('parameter updates')
  axes[1].xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v:,.0f}'))
  axes[0].set_ylabel('test accuracy (%)')
  seeds = max(len(v) for v in runs.values())
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(f'Test accuracy by schedule (mean over {seeds} seed{"s" * (seeds > 1)}'
               f'{", range shaded" if seeds > 1 else ""})')
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=120)
  plt.close(fig)
  run_files.write_atomic(path, buffer.getvalue())


def write_study_outputs(workdir: str) -> str:
  """Writes table.md, table.csv and figure.png to ``workdir``; returns the table."""
  runs = load_runs(workdir)
  if not runs:
    raise FileNotFoundError(f'no finished runs under {workdir}')
  rows = table_rows(runs)
  table = format_markdown(rows)
  run_files.write_atomic(os.path.join(workdir, 'table.md'), table + '\n')
  run_files.write_atomic(os.path.join(workdir, 'table.csv'), format_csv(rows))
  plot_study(runs, os.path.join(workdir, 'figure.png'))
  return table


def main(argv: list[str]) -> None:
  del argv
  print(write_study_outputs(flags.FLAGS.workdir))


if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'A study directory written by launch.py.', required=True)
  app.run(main)
