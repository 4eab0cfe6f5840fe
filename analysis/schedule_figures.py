"""The schedules as trained or planned (the LR, the batch size and the noise scale g;
Smith et al. 2018, Figure 1) and the measured gradient noise scale B_simple
(``analysis.figures``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from analysis import runs as runs_lib
from analysis.curves import epoch_at_update, mean_curve, metrics_steps, schedule_curve
from analysis.drawing import (add_legend, batch_size_axis, draw_curve, draw_diverged,
                              new_figure, set_log_if_wide)
from analysis.runs import Run
from analysis.styles import styles
from analysis.titles import describe, diverged_text, seeds_note
from lr_study.runtime import run_files
from lr_study.schedules import noise_scale


def schedules_figure(runs: Sequence[Run]) -> Any | None:
  """LR, batch size and noise scale g against epochs, one curve per variant (Figure 1)."""
  groups = runs_lib.group_runs(runs)
  if not groups:
    return None
  keys = [('learning_rate', 'learning rate'), ('batch_size', 'batch size')]
  if any('noise_scale' in row for r in runs for row in r.metrics):
    keys.append(('noise_scale', f'noise scale {noise_scale.FORMULA}'))
  planned = all(r.status == 'planned' for r in runs)
  fig, axes = new_figure(len(keys), [
      'Schedules ' + (f'as planned ({run_files.PLAN})' if planned else
                      'as trained (the LR and g at each train-log row where the LR is '
                      'logged, else at each evaluation)'), describe(runs),
      '' if planned else seeds_note(groups)],
                         width=4.8)
  style_of = styles(runs)
  for ax, (key, label) in zip(axes, keys):
    drawn = []
    for group, members in groups.items():
      curve = schedule_curve(members, key)
      if curve is None:
        continue
      draw_curve(ax, curve, style_of[group], members[0].label)
      drawn.append(curve.mean)
    if key == 'batch_size':
      batch_size_axis(ax, drawn)
    else:
      set_log_if_wide(ax, 'y', drawn)
    ax.set(xlabel='epochs', ylabel=label)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3, which='both')
  for run in runs:
    if run.diverged:
      for ax in axes:
        epoch = epoch_at_update(run, run.diverged_at_update)
        if epoch is not None:
          ax.axvline(epoch, color=style_of[run.group].color, linestyle=':', linewidth=1.0,
                     label=f'{run.label} seed {run.seed}: {diverged_text(run)}'
                     if ax is axes[0] else None)
  add_legend(fig, axes, style_of)
  return fig


def gradient_noise_figure(runs: Sequence[Run]) -> Any | None:
  """B_simple over training per variant, the batch size on the same axis; None when no
  metrics row has ``gradient_noise_scale``."""
  measured = [r for r in runs
              if np.isfinite(runs_lib.column(r.metrics, 'gradient_noise_scale')).any()]
  if not measured:
    return None
  groups = runs_lib.group_runs(measured)
  note = seeds_note(groups)
  if 'std' in note:
    note += '; a band that reaches the bottom has std ≥ mean'
  fig, axes = new_figure(1, ['Gradient noise scale B_simple (markers) and batch size B '
                             '(dashed, same colour)', describe(measured), note],
                         width=7.5, height=4.8)
  ax = axes[0]
  style_of = styles(runs)
  drawn = []
  for group, members in groups.items():
    style = style_of[group]
    healthy = [r for r in members if not r.diverged]
    noise = mean_curve(healthy, 'epoch', 'gradient_noise_scale')
    if noise is not None:
      draw_curve(ax, noise, style, members[0].label, band_alpha=0.1)
      drawn.append(noise.mean)
    batch = metrics_steps(healthy, 'batch_size')
    if batch is not None:
      ax.plot(batch.x, batch.mean, color=style.color, linestyle='--', linewidth=1.0,
              drawstyle=batch.drawstyle)
      drawn.append(batch.mean)
    for run in members:
      if run.diverged:
        draw_diverged(ax, run, style, 'epoch', 'gradient_noise_scale')
  ax.plot([], [], color='0.3', linestyle='--', linewidth=1.0,
          label='batch size B (dashed)')
  set_log_if_wide(ax, 'y', drawn)
  ax.set(xlabel='epochs', ylabel='examples')
  ax.set_xlim(left=0)
  ax.grid(alpha=0.3, which='both')
  add_legend(fig, axes, style_of)
  return fig
