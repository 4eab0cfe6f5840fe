"""What the figures draw, in NumPy alone: each group's mean over its seeds of one logged
value against another, and the schedules as trained or planned.

Every curve is one averaging (:func:`mean_over_seeds`): the runs' rows are matched by
their epoch (the k-th row at an epoch with every other run's k-th row there, as a batch
ramp's phases share an epoch), and at each the mean and standard deviation are over the
runs whose value is finite (null reads as NaN). The noise scale g at a train-log row is
``lr_study.schedules.noise_scale.noise_scale`` at the batch size of the plan's phase
that ran the row's last update (``lr_study.schedules.clock.phase_index``).
"""

from __future__ import annotations

import dataclasses
import math
import types
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from analysis.runs import Run, column, number
from lr_study.schedules import clock
from lr_study.schedules.noise_scale import noise_scale

Rows = Sequence[Mapping[str, Any]]
TABLE_FIELDS = tuple(f.name for f in dataclasses.fields(clock.PhaseTable))


@dataclasses.dataclass
class Curve:
  """A group's mean over seeds of ``y`` at each matched row, its standard deviation (0
  for one seed) and the number of seeds averaged. ``drawstyle`` says how its points
  join: ``'default'`` (straight lines), ``'steps-pre'`` (each value holds since the
  previous x) or ``'steps-post'`` (each value holds until the next x)."""
  x: np.ndarray
  mean: np.ndarray
  std: np.ndarray
  seeds: int
  drawstyle: str = 'default'


def mean_over_seeds(row_lists: Sequence[Rows], x_key: str, y_key: str,
                    scale: float = 1.0) -> Curve | None:
  """The mean and standard deviation of ``scale · y_key`` over the runs whose rows are
  ``row_lists``, against their mean ``x_key``; None when no row has a finite ``y_key``."""
  matched: dict[tuple[float, int], list[tuple[float, float]]] = {}
  for rows in row_lists:
    seen: dict[float, int] = {}
    for row in rows:
      epoch = number(row.get('epoch'))
      if np.isnan(epoch):
        continue
      epoch = round(epoch, 9)
      seen[epoch] = seen.get(epoch, -1) + 1
      pair = (number(row.get(x_key)), scale * number(row.get(y_key)))
      matched.setdefault((epoch, seen[epoch]), []).append(pair)
  keys = sorted(k for k, pairs in matched.items() if any(np.isfinite(y) for _, y in pairs))
  if not keys:
    return None
  x, mean, std = [], [], []
  for key in keys:
    xs = np.array([p[0] for p in matched[key]])
    ys = np.array([p[1] for p in matched[key]])
    ys = ys[np.isfinite(ys)]
    x.append(np.nanmean(xs) if np.isfinite(xs).any() else np.nan)
    mean.append(ys.mean())
    std.append(ys.std(ddof=1) if len(ys) > 1 else 0.0)
  return Curve(np.array(x), np.array(mean), np.array(std), len(row_lists))


def mean_curve(runs: Sequence[Run], x_key: str, y_key: str,
               source: str | Callable[[Run], Rows] = 'metrics',
               scale: float = 1.0) -> Curve | None:
  """:func:`mean_over_seeds` of ``runs``' rows: ``source`` is ``'metrics'`` or
  ``'train_log'`` (``Run.rows``), or a function of a run that returns its rows."""
  return mean_over_seeds([source(r) if callable(source) else r.rows(source) for r in runs],
                         x_key, y_key, scale)


def step_rows(rows: Rows, key: str) -> list[Mapping[str, Any]]:
  """Per-evaluation rows as steps over epochs (``'steps-pre'``): each row's ``key`` holds
  over the epochs since the previous row, the first from epoch 0."""
  return [{'epoch': 0.0, key: rows[0].get(key)}, *rows] if rows else []


def plan_rows(plan: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
  """A plan's phases as steps (``'steps-post'``): each phase's ``key`` from its start
  epoch, the last one's to its end."""
  phases = plan.get('phases') or []
  rows = [{'epoch': p['start_epoch'], key: p.get(key)} for p in phases]
  return rows + [{'epoch': phases[-1]['end_epoch'], key: phases[-1].get(key)}] if phases else []


def metrics_steps(runs: Sequence[Run], key: str) -> Curve | None:
  """``key`` at each evaluation of the runs that logged metrics, as steps from epoch 0."""
  curve = mean_over_seeds([step_rows(r.rows('metrics'), key) for r in runs if r.metrics],
                          'epoch', key)
  return curve and dataclasses.replace(curve, drawstyle='steps-pre')


def _noise_inputs(run: Run) -> tuple[clock.PhaseTable, int, float] | None:
  """The phase table, N and m of a run's plan, when it records them all."""
  plan = run.plan or {}
  n, m, phases = plan.get('num_train_examples'), plan.get('momentum'), plan.get('phases')
  if not (isinstance(n, int) and isinstance(m, (int, float)) and phases and m < 1
          and all(field in p for p in phases for field in TABLE_FIELDS)):
    return None
  return clock.PhaseTable.from_phases([types.SimpleNamespace(**p) for p in phases]), n, float(m)


def noise_scale_rows(run: Run) -> list[dict[str, float]]:
  """The noise scale g at each train-log row: its logged LR, the batch size of the
  phase of its last update, N and m from the plan."""
  table, n, m = _noise_inputs(run)
  rows = run.rows('train_log')
  last_updates = column(rows, 'update') - 1
  batch_sizes = np.asarray(table.batch_size)[clock.phase_index(table, last_updates)]
  learning_rates = column(rows, 'learning_rate')
  return [{'epoch': number(row.get('epoch')),
           'noise_scale': noise_scale(lr, b, n, m) if math.isfinite(lr) else math.nan}
          for row, lr, b in zip(rows, learning_rates, batch_sizes)]


def schedule_curve(members: Sequence[Run], key: str) -> Curve | None:
  """A group's ``key`` (``learning_rate``, ``batch_size`` or ``noise_scale``) over
  epochs: at each train-log row where every run logs the LR (the LR, and g where the
  plans give N and m), else at each evaluation, else as planned (a dry run)."""
  healthy = [r for r in members if not r.diverged] or list(members)
  logged = all(any('learning_rate' in row for row in r.train_log) for r in healthy)
  if key == 'learning_rate' and logged:
    curve = mean_curve(healthy, 'epoch', key, source='train_log')
    if curve is not None:
      return curve
  if key == 'noise_scale' and logged and all(_noise_inputs(r) for r in healthy):
    curve = mean_curve(healthy, 'epoch', key, source=noise_scale_rows)
    if curve is not None:
      return curve
  if any(r.metrics for r in healthy):
    return metrics_steps(healthy, key)
  if key != 'noise_scale' and all(r.plan for r in healthy):
    curve = mean_over_seeds([plan_rows(r.plan, key) for r in healthy], 'epoch', key)
    return curve and dataclasses.replace(curve, drawstyle='steps-post')
  return None


def epoch_at_update(run: Run, update: int | None) -> float | None:
  """The last epoch the run logged at or before ``update``; None if it logged none."""
  rows = [r for r in run.metrics + run.train_log if number(r.get('update')) <= (update or 0)]
  if not rows:
    return None
  return max(number(r.get('epoch')) for r in rows)
