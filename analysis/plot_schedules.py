"""Draws the lectures' learning-rate schedule figures and a gallery of every schedule.

    python -m analysis.plot_schedules [--out_dir runs/schedules]

Writes, each from configs built with ``lr_study.schedules.build_lr_schedule``:

* ``exponential_decay.png``: η0·e^(−k·t) from η0 = 0.5 with k = 0.1 and k = 0.01 over
  100 epochs (Raschka, STAT 453 L12.1);
* ``ng_decay.png``: Ng C2W2L09's α0/(1 + decay_rate·epoch_num), 0.95^epoch_num·α0,
  k/√epoch_num·α0 and a discrete staircase, then k/√t·α0 on the mini-batch clock;
* ``step_decay.png``: halving every T epochs, and the paper's ÷5 at epochs 60, 120, 160;
* ``cyclical.png``: Smith 2017's triangular, triangular2 and exp_range in iterations;
* ``gallery.png``: one small panel per registered schedule, from its example config.

Per-epoch schedules are drawn as stepped in training: flat inside each epoch.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lr_study.schedules import (LRSchedule, build_lr_schedule, plateau_controller,  # noqa: E402
                                registered_schedules, schedule_example)

Curve = tuple[str, Mapping[str, Any]]  # (legend label, schedule config)
SAMPLES = 2001
CLOCK_LABEL = {'epoch': 'epoch (0-based)', 'update': 'update (iteration)'}


def _draw(ax: Any, curves: Sequence[Curve], span: float, title: str, log_y: bool = False) -> None:
  """Draws each schedule over ``[0, span]`` of its clock into ``ax``."""
  t = np.linspace(0.0, span, SAMPLES, endpoint=False)
  for label, config in curves:
    schedule = build_lr_schedule(config)
    ax.plot(t, schedule(t), label=label)
  ax.set(title=title, xlabel=CLOCK_LABEL[schedule.clock], ylabel='learning rate')
  if log_y:
    ax.set_yscale('log')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def _figure(path: str, panels: Sequence[tuple[Sequence[Curve], float, str, bool]]) -> str:
  fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3.2 * len(panels)), squeeze=False)
  for ax, (curves, span, title, log_y) in zip(axes[:, 0], panels):
    _draw(ax, curves, span, title, log_y)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _lecture_figures(out_dir: str) -> list[str]:
  ng = {'init_value': 0.2, 'offset': 1}  # Ng: α0 = 0.2, epoch_num = e + 1
  clr = {'base_lr': 0.001, 'max_lr': 0.006, 'step_size': 2000}
  figures = {
      'exponential_decay.png': [(
          [(f'k = {k}', dict(name='exponential', init_value=0.5, k=k)) for k in (0.1, 0.01)],
          100, 'Exponential decay η0·e^(−k·t), η0 = 0.5 (Raschka L12.1)', False)],
      'ng_decay.png': [
          ([('α0 / (1 + 1·epoch_num)', dict(name='inverse_time', decay_rate=1.0, **ng)),
            ('0.95^epoch_num · α0', dict(name='power', gamma=0.95, **ng)),
            ('1/√epoch_num · α0', dict(name='inverse_sqrt', k=1.0, **ng)),
            ('discrete staircase: 0.5^⌊e/5⌋ · α0', dict(name='step', init_value=0.2, gamma=0.5,
                                                step_size=5))],
           30, 'Ng C2W2L09: epoch_num = e + 1 (offset = 1), α0 = 0.2', False),
          ([(f'k/√t · α0, k = {k}', dict(name='inverse_sqrt', init_value=0.2, k=k,
                                           clock='update')) for k in (1.0, 0.5)],
           1000, 'Ng C2W2L09: k/√t · α0 on the mini-batch clock (t from 1), α0 = 0.2', True)],
      'step_decay.png': [
          ([(f'halve every {T} epochs', dict(name='step', init_value=0.1, gamma=0.5,
                                             step_size=T)) for T in (10, 25)],
           100, 'Step decay η0·γ^⌊t/T⌋, η0 = 0.1, γ = 0.5', False),
          ([('÷5 at 60, 120, 160', dict(name='multistep', init_value=0.1,
                                        boundaries=(60, 120, 160), factors=0.2))],
           200, 'Multi-step decay of Smith et al. 2018 §5.1', True)],
      'cyclical.png': [
          ([(mode, dict(name=mode, **clr, **extra))], 16000,
           f'CLR {mode} (Smith 2017): base 0.001, max 0.006, step 2000', False)
          for mode, extra in (('triangular', {}), ('triangular2', {}),
                              ('exp_range', {'gamma': 0.99994}))],
  }
  return [_figure(os.path.join(out_dir, name), panels) for name, panels in figures.items()]


def _plateau_curve(schedule: LRSchedule, span: float) -> tuple[np.ndarray, np.ndarray, str]:
  """The LR of a reduce_on_plateau schedule over a synthetic loss that stops falling."""
  controller = plateau_controller(schedule)
  epochs = np.arange(int(span) + 1)
  lrs = []
  for e in epochs:
    lrs.append(schedule.init_value * controller.multiplier)
    controller.update(max(0.3, 1.0 - 0.05 * e), schedule.init_value)  # evaluated after epoch e
  return epochs, np.asarray(lrs), 'synthetic loss: flat from epoch 14'


def _gallery(path: str) -> str:
  names = registered_schedules()
  cols = 4
  rows = math.ceil(len(names) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
  for ax in axes.flat[len(names):]:
    ax.axis('off')
  for ax, name in zip(axes.flat, names):
    config, span = schedule_example(name)
    schedule = build_lr_schedule(config)
    t = np.linspace(0.0, span, SAMPLES, endpoint=False)
    lr, note = schedule(t), schedule.stepping
    if schedule.dynamic == 'reduce_on_plateau':
      t, lr, note = _plateau_curve(schedule, span)
    elif schedule.dynamic == 'manual':
      note = 'changed by hand at run time'
    ax.plot(t, lr, drawstyle='steps-post' if schedule.dynamic else 'default')
    ax.set_title(name, fontsize=10)
    ax.set_xlabel(f'{CLOCK_LABEL[schedule.clock]} — {note}', fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
  fig.suptitle('Every registered LR schedule (config: lr_schedule.name)')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def main(argv: Sequence[str] | None = None) -> list[str]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out_dir', default=os.path.join('runs', 'schedules'),
                      help='Where the PNGs go (created if missing).')
  args = parser.parse_args(argv)
  os.makedirs(args.out_dir, exist_ok=True)
  paths = _lecture_figures(args.out_dir) + [_gallery(os.path.join(args.out_dir, 'gallery.png'))]
  for path in paths:
    print(f'wrote {path}')
  return paths


if __name__ == '__main__':
  main()
