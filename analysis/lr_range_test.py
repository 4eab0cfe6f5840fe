"""The LR range test: bounds for cyclical learning rates from one short run.

Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017, §3.3: train
for a few epochs while the LR rises from a low to a high value (the ``lr_range``
schedule), then read two LRs off the curve: where the model starts to learn (``base_lr``)
and where learning slows, becomes ragged or diverges (``max_lr``).

Run it with a config whose ``lr_schedule`` is the ramp and whose training log records
every update (or every few)::

    config.lr_schedule = ConfigDict(dict(name='lr_range', min_lr=1e-4, max_lr=1.0,
                                         num_updates=2000, mode='exponential'))
    config.train_log_every_updates = 1

then ``python -m analysis.lr_range_test --workdir RUN_DIR`` reads the run's train log
(``lr_study.runtime.run_files.TRAIN_LOG``: JSON lines with ``update``, ``epoch``,
``learning_rate``, ``train_loss``, ``train_accuracy``), writes ``RUN_DIR/lr_range_test.png`` and prints the
suggested bounds for ``triangular``, ``triangular2`` or ``exp_range``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lr_study.errors import ConfigError  # noqa: E402
from lr_study.runtime import run_files  # noqa: E402
from lr_study.runtime.run_files import TRAIN_LOG  # noqa: E402

FIGURE = 'lr_range_test.png'


def smooth(values: Sequence[float], window: int) -> np.ndarray:
  """Centred moving average over ``window`` points (fewer at the ends, where it is cut)."""
  x = np.asarray(values, dtype=float)
  half = window // 2
  sums = np.concatenate([[0.0], np.cumsum(x)])
  lo = np.clip(np.arange(len(x)) - half, 0, len(x))
  hi = np.clip(np.arange(len(x)) + half + 1, 0, len(x))
  return (sums[hi] - sums[lo]) / (hi - lo)


def default_window(n: int) -> int:
  """An odd window of about 5% of the points, at least 5."""
  return max(5, n // 20) // 2 * 2 + 1


def divergence_index(smoothed: np.ndarray, divergence: float) -> int:
  """The first index whose smoothed loss exceeds ``divergence`` × the lowest so far (or is
  not finite): where the run has diverged. ``len(smoothed)`` when it never does."""
  bad = ~np.isfinite(smoothed)
  running_min = np.fmin.accumulate(np.where(bad, np.inf, smoothed))
  bad |= smoothed > divergence * running_min
  return int(np.argmax(bad)) if bad.any() else len(smoothed)


def suggest_clr_bounds(lrs: Sequence[float], losses: Sequence[float], *,
                       window: int | None = None, divergence: float = 4.0,
                       drop_fraction: float = 0.1) -> tuple[float, float]:
  """``(base_lr, max_lr)`` for cyclical LRs from an LR range test, by this rule:

  1. Sort the points by LR and cut the losses at the first non-finite one.
  2. Smooth them with a centred moving average of ``window`` points (default: about 5%
     of the points, odd, at least 5), so that single noisy batches do not decide.
  3. Cut the run where it diverges: the first point whose smoothed loss exceeds
     ``divergence`` × the lowest smoothed loss so far (fast.ai's ``lr_find`` stops at 4×).
  4. ``max_lr`` is the LR of the lowest smoothed loss before that: past it the loss stops
     falling and turns ragged (Smith's "accuracy slows, becomes ragged, or starts to
     fall").
  5. ``base_lr`` is the first LR at which the smoothed loss has fallen by
     ``drop_fraction`` (10%) of its total fall, from its first value to its minimum:
     where the model starts to learn (Smith's "accuracy starts to increase").

  Smith's rule of thumb ``base_lr = max_lr/3`` or ``/4`` is the usual alternative when the
  onset is hard to see; the CLI prints it too.

  Raises:
    ValueError: fewer than 3 points, or a loss that never falls.
  """
  order = np.argsort(np.asarray(lrs, dtype=float), kind='stable')
  lr = np.asarray(lrs, dtype=float)[order]
  loss = np.asarray(losses, dtype=float)[order]
  finite = np.isfinite(loss)
  end = len(loss) if finite.all() else int(np.argmin(finite))
  if end < 3:
    raise ValueError(f'need at least 3 finite losses before any NaN or inf, got {end}')
  smoothed = smooth(loss[:end], window or default_window(end))
  cut = divergence_index(smoothed, divergence)
  best = int(np.argmin(smoothed[:cut]))
  fall = smoothed[0] - smoothed[best]
  if not fall > 0:
    raise ValueError('the loss never falls over the LR range: start the ramp lower or go higher')
  onset = int(np.argmax(smoothed[:best + 1] <= smoothed[0] - drop_fraction * fall))
  return float(lr[onset]), float(lr[best])


def read_train_log(workdir: str) -> list[dict[str, Any]]:
  """The rows of the train log in ``workdir`` that have a learning rate and a train loss."""
  path = os.path.join(workdir, TRAIN_LOG)
  if not run_files.exists(path):
    raise ConfigError(f'--workdir {workdir!r} has no {TRAIN_LOG}')
  rows = [r for r in run_files.read_jsonl(path) if 'learning_rate' in r and 'train_loss' in r]
  if len(rows) < 3:
    raise ConfigError(f'{path} has {len(rows)} rows with learning_rate and train_loss; '
                      'log every update (train_log_every_updates=1)')
  return sorted(rows, key=lambda r: r['update'])


def plot(path: str, rows: Sequence[dict[str, Any]], bounds: tuple[float, float],
         window: int) -> None:
  """Loss (raw and smoothed) and, when logged, accuracy against the LR, bounds marked."""
  lr = np.array([r['learning_rate'] for r in rows], dtype=float)
  loss = np.array([r['train_loss'] for r in rows], dtype=float)
  panels = [('train loss', loss)]
  if all('train_accuracy' in r for r in rows):
    panels.append(('train accuracy', np.array([r['train_accuracy'] for r in rows], dtype=float)))
  fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3.2 * len(panels)), sharex=True,
                           squeeze=False)
  for ax, (label, values) in zip(axes[:, 0], panels):
    ax.plot(lr, values, alpha=0.35, label=label)
    ax.plot(lr, smooth(values, window), label=f'{label}, moving average of {window}')
    for value, name, style in zip(bounds, ('base_lr', 'max_lr'), ('--', ':')):
      ax.axvline(value, color='k', linestyle=style, label=f'{name} = {value:.3g}')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  if lr.min() > 0 and lr.max() / lr.min() >= 20:
    axes[-1, 0].set_xscale('log')
  axes[0, 0].set_title('LR range test (Smith 2017, §3.3)')
  axes[-1, 0].set_xlabel('learning rate')
  finite = loss[np.isfinite(loss)]
  low, high = finite.min(), min(finite.max(), 4.0 * finite[0])  # hide the divergence
  if high > low:
    axes[0, 0].set_ylim(low - 0.05 * (high - low), high)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv: Sequence[str] | None = None) -> tuple[float, float]:
  parser = argparse.ArgumentParser(description='LR range test (Smith 2017, §3.3).')
  parser.add_argument('--workdir', required=True, help=f'The run directory with {TRAIN_LOG}.')
  parser.add_argument('--out', default=None, help=f'The figure (default WORKDIR/{FIGURE}).')
  parser.add_argument('--window', type=int, default=None,
                      help='Moving-average window in points (default about 5%% of them).')
  args = parser.parse_args(argv)
  rows = read_train_log(args.workdir)
  window = args.window or default_window(len(rows))
  base_lr, max_lr = suggest_clr_bounds([r['learning_rate'] for r in rows],
                                       [r['train_loss'] for r in rows], window=window)
  out = args.out or os.path.join(args.workdir, FIGURE)
  plot(out, rows, (base_lr, max_lr), window)
  print(f'suggested CLR bounds: base_lr={base_lr:.4g} max_lr={max_lr:.4g} '
        f"(Smith's rule of thumb: base_lr = max_lr/4 = {max_lr / 4:.4g})")
  print(f'wrote {out}')
  return base_lr, max_lr


if __name__ == '__main__':
  try:
    main()
  except (ConfigError, ValueError) as e:
    sys.exit(f'error: {e}')
