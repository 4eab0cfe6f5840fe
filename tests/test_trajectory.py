"""`python -m analysis.trajectory` draws SGD paths on a two-parameter loss surface."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from analysis import trajectory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def data() -> trajectory.Dataset:
  return trajectory.make_dataset()


@pytest.fixture(scope='module')
def paths(data) -> dict[str, np.ndarray]:
  return trajectory.compute_paths(data, trajectory.default_specs())


@pytest.mark.slow
def test_cli_writes_png_and_pdf(tmp_path):
  out_dir = tmp_path / 'figure'
  subprocess.run([sys.executable, '-m', 'analysis.trajectory', f'--out_dir={out_dir}'],
                 cwd=ROOT, check=True, capture_output=True, timeout=120)
  with open(out_dir / 'trajectory.png', 'rb') as f:
    png = f.read()
  with open(out_dir / 'trajectory.pdf', 'rb') as f:
    pdf = f.read()
  assert png.startswith(b'\x89PNG\r\n\x1a\n') and len(png) > 50_000
  assert pdf.startswith(b'%PDF') and len(pdf) > 20_000


def test_all_paths_start_at_the_same_point(paths):
  for path in paths.values():
    np.testing.assert_array_equal(path[0], trajectory.START)
    assert len(path) == trajectory.NUM_UPDATES + 1


def test_large_batch_path_jitters_less_than_small_batch(paths):
  assert trajectory.jitter(paths['large batch']) < trajectory.jitter(paths['small batch']) / 20


def test_decayed_lr_settles_closer_to_the_minimum_than_the_constant_lr(data, paths):
  best_loss = trajectory.full_batch_loss(data, trajectory.minimizer(data))
  tail = lambda name: np.mean(trajectory.full_batch_loss(data, paths[name][-100:]) - best_loss)
  assert tail('small batch, decayed LR') < tail('small batch') / 5
  last = lambda name: trajectory.jitter(paths[name][-100:])
  assert last('small batch, decayed LR') < last('small batch') / 100


def test_every_path_descends_from_the_start(data, paths):
  best_loss = trajectory.full_batch_loss(data, trajectory.minimizer(data))
  start_excess = trajectory.full_batch_loss(data, np.asarray(trajectory.START)) - best_loss
  for path in paths.values():
    assert np.max(trajectory.full_batch_loss(data, path[-100:]) - best_loss) < start_excess / 5


def test_full_batch_loss_is_the_mean_squared_error_with_its_minimum_at_least_squares(data):
  rng = np.random.default_rng(0)
  for w in rng.normal(size=(3, 2)):
    direct = 0.5 * np.mean((data.x @ w - data.y) ** 2)
    assert trajectory.full_batch_loss(data, w) == pytest.approx(direct, rel=1e-12)
  best = trajectory.minimizer(data)
  np.testing.assert_allclose(data.x.T @ (data.x @ best - data.y), 0.0, atol=1e-9)
  np.testing.assert_allclose(best, trajectory.TRUE_W, atol=0.1)  # the noise moves it a little


def test_contours_are_elongated(data):
  curvatures = np.linalg.eigvalsh(data.x.T @ data.x / len(data.y))  # the loss's Hessian
  assert curvatures.max() / curvatures.min() > 4


def test_full_batch_sgd_is_gradient_descent(data):
  n = len(data.y)
  lrs = np.full(5, 0.3)
  path = trajectory.sgd_path(data, trajectory.START, n, lrs, seed=0)
  w = np.asarray(trajectory.START, dtype=float)
  for lr in lrs:
    w = w - lr * data.x.T @ (data.x @ w - data.y) / n
  np.testing.assert_allclose(path[-1], w, rtol=1e-12)


def test_first_update_uses_the_first_batch_of_the_seeded_permutation(data):
  batch = np.random.default_rng(7).permutation(len(data.y))[:16]
  w = np.asarray(trajectory.START, dtype=float)
  x, y = data.x[batch], data.y[batch]
  expected = w - 0.1 * (x @ w - y) @ x / 16
  path = trajectory.sgd_path(data, trajectory.START, 16, np.array([0.1]), seed=7)
  np.testing.assert_allclose(path[1], expected, rtol=1e-12)


def test_sgd_path_is_reproducible_per_seed(data):
  lrs = np.full(50, 0.3)
  first = trajectory.sgd_path(data, trajectory.START, 8, lrs, seed=3)
  np.testing.assert_array_equal(first, trajectory.sgd_path(data, trajectory.START, 8, lrs, seed=3))
  assert not np.allclose(first, trajectory.sgd_path(data, trajectory.START, 8, lrs, seed=4))


def test_decayed_path_follows_the_exponential_schedule():
  spec = trajectory.default_specs()[2]
  lrs = trajectory.learning_rates(spec, trajectory.NUM_UPDATES)
  t = np.arange(trajectory.NUM_UPDATES)
  np.testing.assert_allclose(lrs, trajectory.LEARNING_RATE * np.exp(-trajectory.DECAY_K * t))


def test_legend_states_each_noise_scale():
  n = trajectory.NUM_EXAMPLES
  small, large, decayed = (trajectory.legend_label(s, n, trajectory.NUM_UPDATES)
                           for s in trajectory.default_specs())
  assert small.endswith(f'g = {0.3 * (n / 4 - 1):.3g}')
  assert large.endswith(f'g = {0.3 * (n / 256 - 1):.3g}')
  final_lr = 0.3 * np.exp(-trajectory.DECAY_K * (trajectory.NUM_UPDATES - 1))
  assert decayed.endswith(f'g = {0.3 * (n / 4 - 1):.3g} → {final_lr * (n / 4 - 1):.2g}')
