"""Ghost batch norm: per-ghost statistics, running averages, the whole-batch case, ghosts
of the global micro-batch under pmap, and a layout that would split a ghost refused."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest

from lr_study.errors import ConfigError
from lr_study.models import GhostBatchNorm, build_model
from lr_study.runtime.devices import AXIS

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
  with pytest.raises(ConfigError, match=r'^ghost_batch_size 4 does not divide the micro-batch '
                                        r'of 10 examples on 1 device'):
    _train(GhostBatchNorm(ghost_batch_size=4), variables, x)


# --- ghosts of the global micro-batch under pmap

MLP_BN = dict(name='mlp', widths=(32, 16), batch_norm=True)

# (devices, examples per device, ghost_batch_size): ghosts spanning devices at unaligned
# boundaries (80 per device, ghosts of 128), at aligned ones (32 per device, 128), local
# ghosts (16 of 80), and 0 (each device's own examples).
LAYOUTS = [(8, 80, 128), (4, 160, 128), (4, 32, 128), (8, 80, 16), (8, 80, 0)]


def _global_batch(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
  """Inputs whose scale and offset vary from example to example, in a moderate range."""
  rng = np.random.default_rng(seed)
  spread = 1 + (np.arange(shape[0]) % 7).reshape((-1,) + (1,) * (len(shape) - 1))
  return (rng.normal(size=shape) * spread + spread).astype(np.float32)


def _one_device_ghost(per_device: int, ghost_batch_size: int) -> int:
  """The ghost size one device holding the global micro-batch uses for the same ghosts."""
  return ghost_batch_size or per_device


def _pmap_train(apply, num_devices: int, *arrays: np.ndarray):
  """``apply(*device_slices)`` under pmap over ``AXIS``, each array split over the devices
  in order; returns the per-device results stacked."""
  split = [a.reshape((num_devices, -1) + a.shape[1:]) for a in arrays]
  return jax.pmap(apply, axis_name=AXIS, devices=jax.devices()[:num_devices])(*split)


def _pmean(tree):
  return jax.tree.map(lambda a: np.asarray(a).mean(0), tree)


def _assert_close(actual, expected, tolerance: float = 1e-5) -> None:
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance),
               actual, expected)


@pytest.mark.multidevice
@pytest.mark.parametrize('num_devices, per_device, ghost', LAYOUTS)
def test_ghost_batch_norm_under_pmap_matches_one_device_on_the_global_micro_batch(
    num_devices, per_device, ghost):
  x, variables = _global_batch((num_devices * per_device, 3, 5)), _variables(5)
  one = GhostBatchNorm(_one_device_ghost(per_device, ghost))
  y_one, stats_one = _train(one, variables, x)
  spread = GhostBatchNorm(ghost, axis_name=AXIS)
  y, stats = _pmap_train(lambda x: _train(spread, variables, x), num_devices, x)
  _assert_close(np.asarray(y).reshape(x.shape), y_one)
  _assert_close(_pmean(stats), stats_one)


@pytest.mark.multidevice
@pytest.mark.parametrize('num_devices, per_device, ghost', LAYOUTS)
def test_mlp_with_batch_norm_under_pmap_matches_one_device(num_devices, per_device, ghost):
  x = _global_batch((num_devices * per_device, 4, 4, 1))
  one = build_model(MLP_BN, 10, _one_device_ghost(per_device, ghost))
  spread = build_model(MLP_BN, 10, ghost, axis_name=AXIS)
  variables = spread.init(jax.random.key(0), x[:1], train=False)
  train = lambda model, x: model.apply(variables, x, train=True, mutable=['batch_stats'])
  logits_one, stats_one = train(one, x)
  logits, stats = _pmap_train(lambda x: train(spread, x), num_devices, x)
  _assert_close(np.asarray(logits).reshape(logits_one.shape), logits_one)
  _assert_close(_pmean(stats), stats_one)


@pytest.mark.multidevice
@pytest.mark.parametrize('num_devices, per_device, ghost', LAYOUTS)
def test_gradients_under_pmap_averaged_over_devices_match_one_device(
    num_devices, per_device, ghost):
  x = _global_batch((num_devices * per_device, 4, 4, 1))
  labels = np.random.default_rng(1).integers(0, 10, x.shape[0])
  one = build_model(MLP_BN, 10, _one_device_ghost(per_device, ghost))
  spread = build_model(MLP_BN, 10, ghost, axis_name=AXIS)
  variables = spread.init(jax.random.key(0), x[:1], train=False)

  def grads(model, x, labels):
    def loss(params):
      logits, _ = model.apply({**variables, 'params': params}, x, train=True,
                              mutable=['batch_stats'])
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return jax.grad(loss)(variables['params'])

  device_grads = _pmap_train(lambda x, y: jax.lax.pmean(grads(spread, x, y), AXIS), num_devices,
                             x, labels)
  _assert_close(jax.tree.map(lambda g: np.asarray(g)[0], device_grads), grads(one, x, labels))


@pytest.mark.multidevice
@pytest.mark.parametrize('ghost, communicates', [(16, False), (0, False), (128, True)])
def test_only_ghosts_spanning_devices_communicate(ghost, communicates):
  x, variables = _global_batch((8, 80, 5)), _variables(5)
  module = GhostBatchNorm(ghost, axis_name=AXIS)
  jaxpr = jax.make_jaxpr(jax.pmap(lambda x: _train(module, variables, x), axis_name=AXIS))(x)
  assert ('psum' in str(jaxpr)) == communicates


def test_model_with_axis_name_initialises_and_trains_outside_pmap_as_one_device():
  x = _global_batch((12, 4, 4, 1))
  spread, one = build_model(MLP_BN, 10, 4, axis_name=AXIS), build_model(MLP_BN, 10, 4)
  variables = spread.init(jax.random.key(0), x[:1], train=False)
  _assert_close(variables, one.init(jax.random.key(0), x[:1], train=False), 0)
  _assert_close(spread.apply(variables, x, train=True, mutable=['batch_stats']),
                one.apply(variables, x, train=True, mutable=['batch_stats']), 0)


@pytest.mark.multidevice
def test_ghost_batch_norm_under_pmap_rejects_a_layout_that_splits_a_ghost_batch():
  x, variables = _global_batch((8 * 75, 3)), _variables(3)
  with pytest.raises(ConfigError, match=r'ghost_batch_size 128 does not divide the micro-batch '
                                        r'of 600 examples on 8 devices'):
    _pmap_train(lambda x: _train(GhostBatchNorm(128, axis_name=AXIS), variables, x), 8, x)
