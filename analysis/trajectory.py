r"""SGD paths on a two-parameter loss surface: small batch, large batch and a decayed LR.

    python -m analysis.trajectory --out_dir=runs/trajectory

writes ``trajectory.png`` and ``trajectory.pdf``, the picture of Raschka's STAT 453
L12.1: minibatch SGD from one starting point on the contours of a loss with two
parameters. The loss is least squares on a fixed synthetic dataset of N examples,

    L(w) = 1/(2N) · Σ_i (w1·x_i1 + w2·x_i2 − y_i)²,   y_i = w1*·x_i1 + w2*·x_i2 + σ·z_i,

with z_i ~ N(0, 1) and correlated features of unequal scale, so that the contours are
long, tilted ellipses around the least-squares solution. The contours are the exact
full-batch loss;
the paths are real minibatch SGD, ``w ← w − ε_t · ∇L_batch(w)``, each epoch a fresh
permutation of the N examples cut into ⌊N/B⌋ batches of B (the remainder dropped), as in
training. Each path is labelled with its noise scale g = ε(N/B − 1) (Smith et al. 2018):

* a small batch at a constant LR: the path is noisy and keeps wandering around the minimum;
* a large batch at the same LR: smaller noise scale, a smooth path close to gradient descent;
* the small batch with an exponentially decayed LR, ε_t = ε0·e^(−k·t) per update: the
  noise scale falls with ε_t and the path settles close to the minimum.

The middle panel zooms on the minimum for the paths' last updates; the right panel shows
the full-batch loss above its minimum along each path.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from absl import app, flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lr_study.schedules import build_lr_schedule  # noqa: E402
from lr_study.schedules.noise_scale import noise_scale  # noqa: E402

NUM_EXAMPLES = 4000
TRUE_W = (1.0, 0.5)
START = (-2.5, 2.5)
NUM_UPDATES = 600
LEARNING_RATE = 0.3
SMALL_BATCH = 4
LARGE_BATCH = 256
DECAY_K = 0.006  # per update: ε falls by e^(−3.6) ≈ 1/37 over the 600 updates
OUTPUTS = ('trajectory.png', 'trajectory.pdf')
ZOOM_UPDATES = 150
# Drawn in this order: the large batch on top, so the small batch's noise does not hide it.
PATH_STYLES = (dict(color='tab:red', lw=0.8, alpha=0.8, zorder=2),
               dict(color='tab:blue', lw=1.6, alpha=1.0, zorder=4),
               dict(color='tab:green', lw=1.0, alpha=0.9, zorder=3))


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Features ``x`` [N, 2] and targets ``y`` [N] of the two-parameter regression."""

  x: np.ndarray
  y: np.ndarray


@dataclasses.dataclass(frozen=True)
class PathSpec:
  """One SGD path.

  Attributes:
    name: its legend name.
    batch_size: B.
    lr_schedule: a ``build_lr_schedule`` config on the update clock.
    seed: the seed of its batch order; the same for every default path, so the two
      small-batch paths draw the same batches and differ only in their LR.
  """

  name: str
  batch_size: int
  lr_schedule: dict
  seed: int = 1


def make_dataset(num_examples: int = NUM_EXAMPLES, seed: int = 0, noise: float = 1.0) -> Dataset:
  """Correlated features of scales 1 and 0.4 (tilted 30°); y = x·w* + noise·N(0, 1)."""
  rng = np.random.default_rng(seed)
  angle = np.deg2rad(30.0)
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  x = rng.standard_normal((num_examples, 2)) * np.array([1.0, 0.4]) @ rotation.T
  y = x @ np.asarray(TRUE_W) + noise * rng.standard_normal(num_examples)
  return Dataset(x=x, y=y)


def full_batch_loss(data: Dataset, w: np.ndarray) -> np.ndarray:
  """L(w) = 1/(2N)·Σ_i (x_i·w − y_i)², for ``w`` of shape [..., 2] (a grid or a path)."""
  w = np.asarray(w, dtype=float)
  # Expanded in the data's second moments: exact, and cheap on a grid.
  xx = data.x.T @ data.x / len(data.y)
  xy = data.x.T @ data.y / len(data.y)
  yy = data.y @ data.y / len(data.y)
  return 0.5 * (np.einsum('...i,ij,...j->...', w, xx, w) - 2 * w @ xy + yy)


def minimizer(data: Dataset) -> np.ndarray:
  """The least-squares solution w = (XᵀX)⁻¹Xᵀy: the center of the contours."""
  return np.linalg.solve(data.x.T @ data.x, data.x.T @ data.y)


def learning_rates(spec: PathSpec, num_updates: int) -> np.ndarray:
  """ε_t for t = 0 … num_updates − 1, from the spec's schedule on the update clock."""
  schedule = build_lr_schedule(spec.lr_schedule)
  return np.asarray(schedule(np.arange(num_updates, dtype=float)), dtype=float)


def sgd_path(data: Dataset, start: Sequence[float], batch_size: int, lrs: np.ndarray,
             seed: int) -> np.ndarray:
  """Minibatch SGD ``w ← w − ε_t · (1/B)·Σ_{i∈batch} (x_i·w − y_i)·x_i``.

  Each epoch draws a fresh permutation (``np.random.default_rng(seed)``) and cuts it into
  ⌊N/B⌋ consecutive batches. Returns the ``len(lrs) + 1`` points, the start first.
  """
  n = len(data.y)
  per_epoch = n // batch_size
  rng = np.random.default_rng(seed)
  path = np.empty((len(lrs) + 1, 2))
  path[0] = start
  order = np.empty(0, dtype=int)
  for t, lr in enumerate(lrs):
    i = t % per_epoch
    if i == 0:
      order = rng.permutation(n)
    batch = order[i * batch_size:(i + 1) * batch_size]
    x, y = data.x[batch], data.y[batch]
    grad = (x @ path[t] - y) @ x / batch_size
    path[t + 1] = path[t] - lr * grad
  return path


def jitter(path: np.ndarray) -> float:
  """The mean squared change from one step to the next, mean |Δw_{t+1} − Δw_t|²."""
  return float(np.mean(np.sum(np.diff(path, n=2, axis=0) ** 2, axis=-1)))


def default_specs() -> list[PathSpec]:
  """The figure's three paths: small batch, large batch, small batch with a decayed LR."""
  constant = dict(name='constant', init_value=LEARNING_RATE, clock='update')
  decayed = dict(name='exponential', init_value=LEARNING_RATE, k=DECAY_K, clock='update')
  return [PathSpec('small batch', SMALL_BATCH, constant),
          PathSpec('large batch', LARGE_BATCH, constant),
          PathSpec('small batch, decayed LR', SMALL_BATCH, decayed)]


def compute_paths(data: Dataset, specs: Sequence[PathSpec], start: Sequence[float] = START,
                  num_updates: int = NUM_UPDATES) -> dict[str, np.ndarray]:
  """Each spec's SGD path from ``start``, by name."""
  return {s.name: sgd_path(data, start, s.batch_size, learning_rates(s, num_updates), s.seed)
          for s in specs}


def legend_label(spec: PathSpec, num_examples: int, num_updates: int) -> str:
  """'name: B = …, ε = …, g = ε(N/B − 1) = …' (a range when ε changes)."""
  lrs = learning_rates(spec, num_updates)
  g = [noise_scale(lr, spec.batch_size, num_examples) for lr in (lrs[0], lrs[-1])]
  if np.isclose(lrs[0], lrs[-1]):
    return f'{spec.name}: B = {spec.batch_size}, ε = {lrs[0]:.3g}, g = {g[0]:.3g}'
  return (f'{spec.name}: B = {spec.batch_size}, ε = {lrs[0]:.3g} → {lrs[-1]:.2g}, '
          f'g = {g[0]:.3g} → {g[1]:.2g}')


def _zoom(ax: Any, zoom: Any, data: Dataset, specs: Sequence[PathSpec],
          paths: dict[str, np.ndarray]) -> None:
  """Draws into ``zoom`` the last ``ZOOM_UPDATES`` updates of each path around the minimum,
  and marks that frame on ``ax``."""
  best = minimizer(data)
  half = 1.05 * max(np.abs(p[-ZOOM_UPDATES:] - best).max() for p in paths.values())
  w1, w2 = np.meshgrid(np.linspace(best[0] - half, best[0] + half, 200),
                       np.linspace(best[1] - half, best[1] + half, 200))
  surface = full_batch_loss(data, np.stack([w1, w2], axis=-1)) - full_batch_loss(data, best)
  zoom.contour(w1, w2, surface, levels=np.geomspace(surface.max() / 300, surface.max(), 8),
               cmap='Greys_r', linewidths=0.6)
  for spec, style in zip(specs, PATH_STYLES):
    tail = paths[spec.name][-ZOOM_UPDATES:]
    zoom.plot(tail[:, 0], tail[:, 1], '.-', ms=3, **style)
    zoom.plot(*tail[-1], 'o', color=style['color'], ms=7, mec='black', mew=0.8,
              zorder=style['zorder'] + 3)
  zoom.plot(*best, '*', color='gold', ms=11, mec='black', zorder=4.5)
  zoom.set(xlim=(best[0] - half, best[0] + half), ylim=(best[1] - half, best[1] + half),
           aspect='equal', xlabel='$w_1$', ylabel='$w_2$',
           title=f'Around the minimum: the last {ZOOM_UPDATES} updates')
  ax.indicate_inset((best[0] - half, best[1] - half, 2 * half, 2 * half), edgecolor='0.3')


def plot(data: Dataset, specs: Sequence[PathSpec], paths: dict[str, np.ndarray],
         out_paths: Sequence[str]) -> None:
  """Draws the paths on the loss contours (left), around the minimum (middle) and their
  full-batch loss per update (right)."""
  best = minimizer(data)
  min_loss = float(full_batch_loss(data, best))
  points = np.concatenate(list(paths.values()))
  low, high = points.min(0), points.max(0)
  pad = 0.15 * (high - low).max()
  w1, w2 = np.meshgrid(np.linspace(low[0] - pad, high[0] + pad, 300),
                       np.linspace(low[1] - pad, high[1] + pad, 300))
  surface = full_batch_loss(data, np.stack([w1, w2], axis=-1)) - min_loss
  levels = np.geomspace(1e-3, surface.max(), 14)

  fig, (ax, zoom, ax_loss) = plt.subplots(1, 3, figsize=(18, 6),
                                          gridspec_kw={'width_ratios': [1.25, 1, 1]})
  contours = ax.contour(w1, w2, surface, levels=levels, cmap='Greys_r', linewidths=0.7)
  ax.clabel(contours, levels[-5::2], fmt='%.2g', fontsize=7)
  num_updates = len(next(iter(paths.values()))) - 1
  for spec, style in zip(specs, PATH_STYLES):
    path = paths[spec.name]
    label = legend_label(spec, len(data.y), num_updates)
    ax.plot(path[:, 0], path[:, 1], '-', label=label, **style)
    ax.plot(*path[-1], 'o', color=style['color'], ms=7, mec='black', mew=0.8,
            zorder=style['zorder'] + 3)
    excess = np.maximum(full_batch_loss(data, path) - min_loss, 1e-12)
    ax_loss.plot(np.arange(len(path)), excess, color=style['color'], lw=0.9, label=spec.name,
                 zorder=style['zorder'])
  start = next(iter(paths.values()))[0]
  ax.plot(*start, 's', color='black', ms=8, label='start', zorder=8)
  ax.plot(*best, '*', color='gold', ms=13, mec='black', label='minimum (least squares)',
          zorder=4.5)
  _zoom(ax, zoom, data, specs, paths)
  ax.set(xlabel='$w_1$', ylabel='$w_2$', aspect='equal',
         title=f'Minibatch SGD on the loss contours, {num_updates} updates each')
  ax.legend(fontsize=7.5, loc='lower left', framealpha=0.95)
  ax_loss.set(xlabel='update', ylabel='$L(w) - \\min\\, L$ (full batch)', yscale='log',
              title='Loss above its minimum along each path')
  ax_loss.grid(alpha=0.3, which='both')
  ax_loss.legend(fontsize=8, loc='lower left')
  fig.suptitle('Small batch vs large batch vs decayed LR on least squares '
               f'$y = w_1 x_1 + w_2 x_2 + $noise, N = {len(data.y)}; '
               'noise scale g = ε(N/B − 1)', fontsize=11)
  fig.tight_layout()
  for path in out_paths:
    fig.savefig(path, dpi=130)
  plt.close(fig)


def write_figure(out_dir: str) -> list[str]:
  """Computes the paths and writes ``trajectory.png`` and ``trajectory.pdf`` to ``out_dir``."""
  os.makedirs(out_dir, exist_ok=True)
  data = make_dataset()
  specs = default_specs()
  paths = compute_paths(data, specs)
  out_paths = [os.path.join(out_dir, name) for name in OUTPUTS]
  plot(data, specs, paths, out_paths)
  return out_paths


def main(argv: Sequence[str]) -> None:
  del argv
  for path in write_figure(flags.FLAGS.out_dir):
    print(f'wrote {path}')


if __name__ == '__main__':
  flags.DEFINE_string('out_dir', 'runs/trajectory', 'Where to write the figure.')
  app.run(main)
