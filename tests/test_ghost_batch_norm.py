"""Ghost batch norm: per-ghost statistics, running averages, and the whole-batch case."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest

from lr_study.errors import ConfigError
from lr_study.models import GhostBatchNorm

MOMENTUM, EPS = 0.9, 1e-5


def _inputs(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
  """Random inputs whose examples differ in scale and offset along the batch."""
  rng = np.random.default_rng(seed)
  spread = 1 + np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
  return (rng.normal(size=shape) * spread + spread).astype(np.float32)


def _variables(features: int, seed: int = 1) -> dict:
  """Non-trivial scale, bias and running averages."""
  rng = np.random.default_rng(seed)
  draw = lambda low, high: rng.uniform(low, high, features).astype(np.float32)
  return {'params': {'scale': draw(0.5, 2), 'bias': draw(-1, 1)},
          'batch_stats': {'mean': draw(-1, 1), 'var': draw(0.5, 2)}}


def _ghost_stats(x: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
  """NumPy float64 mean and biased variance of each ghost batch, shape [B/g, C]."""
  ghosts = x.astype(np.float64).reshape(x.shape[0] // g, -1, x.shape[-1])
  return ghosts.mean(1), ghosts.var(1)


def _train(module: nn.Module, variables: dict, x: np.ndarray):
  return module.apply(variables, x, use_running_average=False, mutable=['batch_stats'])


@pytest.mark.parametrize('ghost_batch_size', [0, 16, 64])
def test_whole_batch_ghost_size_equals_flax_batch_norm(ghost_batch_size):
  x, variables = _inputs((16, 4, 4, 3)), _variables(3)
  y, stats = _train(GhostBatchNorm(ghost_batch_size), variables, x)
  y_ref, stats_ref = _train(nn.BatchNorm(momentum=MOMENTUM, epsilon=EPS), variables, x)
  np.testing.assert_allclose(y, y_ref, atol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), stats, stats_ref)


def test_each_ghost_batch_is_normalised_with_its_own_statistics():
  x, variables = _inputs((12, 2, 5)), _variables(5)
  y, _ = _train(GhostBatchNorm(ghost_batch_size=4), variables, x)
  mean, var = _ghost_stats(x, 4)
  ghosts = x.reshape(3, -1, 5)
  expected = ((ghosts - mean[:, None]) / np.sqrt(var[:, None] + EPS)
              * variables['params']['scale'] + variables['params']['bias'])
  np.testing.assert_allclose(y, expected.reshape(x.shape), rtol=1e-5, atol=1e-5)


def test_running_averages_move_towards_mean_of_ghost_statistics():
  x, variables = _inputs((12, 5)), _variables(5)
  _, updated = _train(GhostBatchNorm(ghost_batch_size=3), variables, x)
  mean, var = _ghost_stats(x, 3)
  old = variables['batch_stats']
  np.testing.assert_allclose(updated['batch_stats']['mean'],
                             MOMENTUM * old['mean'] + (1 - MOMENTUM) * mean.mean(0), rtol=1e-5)
  np.testing.assert_allclose(updated['batch_stats']['var'],
                             MOMENTUM * old['var'] + (1 - MOMENTUM) * var.mean(0), rtol=1e-5)


def test_evaluation_uses_running_averages():
  x, variables = _inputs((6, 5)), _variables(5)
  y = GhostBatchNorm(ghost_batch_size=3).apply(variables, x, use_running_average=True)
  stats, params = variables['batch_stats'], variables['params']
  expected = (x - stats['mean']) / np.sqrt(stats['var'] + EPS) * params['scale'] + params['bias']
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_initialisation_leaves_running_averages_at_zero_mean_unit_variance():
  variables = GhostBatchNorm(4).init(jax.random.key(0), _inputs((8, 3)), use_running_average=False)
  np.testing.assert_array_equal(variables['batch_stats']['mean'], np.zeros(3))
  np.testing.assert_array_equal(variables['batch_stats']['var'], np.ones(3))


def test_ghost_size_that_does_not_divide_the_batch_is_an_error_naming_both():
  x, variables = _inputs((10, 3)), _variables(3)
  with pytest.raises(ConfigError, match=r'ghost_batch_size 4 does not divide the batch of 10'):
    _train(GhostBatchNorm(ghost_batch_size=4), variables, x)
