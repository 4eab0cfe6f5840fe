"""The figures of test accuracy and training loss, each against epochs, parameter updates
or training seconds, and per optimizer (``analysis.figures``)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from analysis import runs as runs_lib
from analysis.curves import mean_curve
from analysis.drawing import (AXIS_LABELS, add_legend, draw_curve, draw_diverged, new_figure,
                              set_log_if_wide)
from analysis.runs import Run
from analysis.styles import Style, styles
from analysis.titles import describe, describe_optimizer, seeds_note


def _metric_groups(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
  return runs_lib.group_runs([r for r in runs if r.metrics])


def _panels(ax_list: Sequence[Any], runs: Sequence[Run], y_key: str, x_keys: Sequence[str],
            scale: float, style_of: Mapping[tuple[str, str], Style]) -> list[np.ndarray]:
  """Draws ``y_key`` against each of ``x_keys`` (one per panel) for every group; returns
  the mean curves' values drawn in the first panel."""
  drawn: list[np.ndarray] = []
  for group, members in _metric_groups(runs).items():
    style = style_of[group]
    healthy = [r for r in members if not r.diverged]
    for i, (ax, x_key) in enumerate(zip(ax_list, x_keys)):
      curve = mean_curve(healthy, x_key, y_key, scale=scale)
      if curve is not None:
        draw_curve(ax, curve, style, members[0].label)
        if i == 0:
          drawn.append(curve.mean)
      for run in members:
        if run.diverged:
          draw_diverged(ax, run, style, x_key, y_key, scale=scale, label=i == 0)
  return drawn


def _finish_axes(axes: Sequence[Any], x_keys: Sequence[str], ylabel: str,
                 runs: Sequence[Run]) -> None:
  groups = _metric_groups(runs)
  for ax, x_key in zip(axes, x_keys):
    xs = [runs_lib.column(r.rows('metrics'), x_key) for g in groups.values() for r in g]
    if x_key in ('update', 'examples_seen'):  # counts: log where they span a decade
      set_log_if_wide(ax, 'x', xs, wide_numbers=True)
    else:  # epochs and seconds: linear from 0
      ax.set_xlim(left=0)
    ax.set_xlabel(AXIS_LABELS.get(x_key, x_key))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def accuracy_figure(runs: Sequence[Run]) -> Any | None:
  """Test accuracy against epochs and against parameter updates (Figure 2)."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  fig, axes = new_figure(2, ['Test accuracy against epochs and parameter updates',
                             describe(runs), seeds_note(groups)], sharey=True)
  style_of = styles(runs)
  _panels(axes, runs, 'test_accuracy', ('epoch', 'update'), 100.0, style_of)
  _finish_axes(axes, ('epoch', 'update'), 'test accuracy (%)', runs)
  add_legend(fig, axes, style_of)
  return fig


def loss_figure(runs: Sequence[Run]) -> Any | None:
  """Training cross-entropy against epochs and against parameter updates."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  fig, axes = new_figure(2, ['Training cross-entropy (averaged over each epoch\'s updates)',
                             describe(runs), seeds_note(groups)], sharey=True)
  style_of = styles(runs)
  means = _panels(axes, runs, 'train_loss', ('epoch', 'update'), 1.0, style_of)
  _finish_axes(axes, ('epoch', 'update'), 'training loss', runs)
  set_log_if_wide(axes[0], 'y', means)  # the panels share their y axis
  axes[0].grid(alpha=0.3, which='both')
  axes[1].grid(alpha=0.3, which='both')
  add_legend(fig, axes, style_of)
  return fig


def wall_clock_figure(runs: Sequence[Run]) -> Any | None:
  """Test accuracy against training seconds."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  fig, axes = new_figure(1, ['Test accuracy against training time (compilation included)',
                             describe(runs), seeds_note(groups)], width=7.5)
  style_of = styles(runs)
  _panels(axes, runs, 'test_accuracy', ('wall_time',), 100.0, style_of)
  _finish_axes(axes, ('wall_time',), 'test accuracy (%)', runs)
  add_legend(fig, axes, style_of)
  return fig


def optimizers_figure(runs: Sequence[Run]) -> Any | None:
  """One panel per optimizer: test accuracy against epochs, each schedule a curve."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  by_optimizer: dict[str, list[Run]] = {}
  for members in groups.values():
    for run in members:
      name = str((run.config.get('optimizer') or {}).get('name', 'unknown'))
      by_optimizer.setdefault(name, []).append(run)
  fig, axes = new_figure(len(by_optimizer), ['Test accuracy per optimizer',
                                             describe(runs, optimizer=False),
                                             seeds_note(groups)],
                         width=max(5.6, 7.5 / len(by_optimizer)), sharey=True)
  style_of = styles(runs)
  for ax, (name, members) in zip(axes, by_optimizer.items()):
    _panels([ax], members, 'test_accuracy', ('epoch',), 100.0, style_of)
    _finish_axes([ax], ('epoch',), 'test accuracy (%)', members)
    ax.set_title(' / '.join(dict.fromkeys(describe_optimizer(r.config) for r in members)),
                 fontsize=10)
  add_legend(fig, axes, style_of)
  return fig

