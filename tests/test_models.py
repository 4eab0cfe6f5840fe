"""Models: shapes, published sizes, collections, and config errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lr_study.errors import ConfigError
from lr_study.models import build_model
from lr_study.runtime.devices import AXIS

RASCHKA_MLP = dict(name='mlp', widths=(75, 45), batch_norm=True, dropout=(0.5, 0.3))


def _init(model, shape):
  """Variables as the train step makes them (compiled: eager init is slower)."""
  init = jax.jit(model.init, static_argnames='train')
  return init({'params': jax.random.key(0), 'dropout': jax.random.key(1)},
              jnp.zeros(shape, jnp.float32), train=False)


def _count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize('cfg, shape', [
    (dict(name='mlp'), (4, 8, 8, 1)),
    (RASCHKA_MLP, (4, 28, 28, 1)),
    (dict(name='cnn', batch_norm=True, dropout=0.5), (4, 28, 28, 1)),
    (dict(name='cnn'), (4, 8, 8, 1)),
    (dict(name='wide_resnet', depth=10, width=2, dropout=0.3), (4, 32, 32, 3)),
])
def test_models_return_float32_logits_per_example_in_train_and_eval(cfg, shape):
  model = build_model(ml_collections.ConfigDict(cfg), num_classes=7, ghost_batch_size=2)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  variables = jax.eval_shape(lambda: _init(model, shape))
  logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  train_logits, _ = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, rngs={'dropout': jax.random.key(2)},
                               mutable=['batch_stats']), variables, x)
  assert logits.shape == train_logits.shape == (4, 7)
  assert logits.dtype == train_logits.dtype == jnp.float32


def test_wide_resnet_16_4_has_the_published_2_7m_parameters():
  model = build_model({'name': 'wide_resnet', 'depth': 16, 'width': 4}, 10, 128)
  params = jax.eval_shape(lambda: _init(model, (1, 32, 32, 3)))['params']
  assert _count(params) == 2_748_890  # Zagoruyko & Komodakis 2016: 2.7M on CIFAR-10
  assert round(_count(params) / 1e6, 1) == 2.7


def test_raschka_mlp_is_784_75_45_10_with_batch_norm():
  model = build_model(RASCHKA_MLP, 10, 0)
  variables = jax.eval_shape(lambda: _init(model, (1, 28, 28, 1)))
  shapes = jax.tree.map(np.shape, variables)
  assert [shapes['params'][f'Dense_{i}']['kernel'] for i in range(3)] == [
      (784, 75), (75, 45), (45, 10)]
  assert 'bias' not in shapes['params']['Dense_0']  # batch norm's β replaces it
  assert [shapes['batch_stats'][f'GhostBatchNorm_{i}']['mean'] for i in range(2)] == [(75,),
                                                                                      (45,)]
  assert _count(variables['params']) == 62_875  # as PyTorch counts the STAT 453 net


def test_dropout_draws_from_the_dropout_rng_only_in_training():
  model = build_model({'name': 'mlp', 'widths': (64,), 'dropout': 0.5}, 10, 0)
  x = jnp.ones((2, 8, 8, 1), jnp.float32)
  variables = _init(model, x.shape)
  train = [model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(k)})
           for k in (0, 1)]
  assert not np.allclose(train[0], train[1])
  np.testing.assert_array_equal(model.apply(variables, x, train=False),
                                model.apply(variables, x, train=False))


@pytest.mark.parametrize('cfg', [dict(name='cnn', batch_norm=True),
                                 dict(name='wide_resnet', depth=10, width=1)])
def test_batch_norm_statistics_live_in_batch_stats_and_update_in_training(cfg):
  model = build_model(cfg, 10, 0)
  variables = _init(model, (4, 8, 8, 3))
  assert set(variables) == {'params', 'batch_stats'}
  x = jax.random.normal(jax.random.key(3), (4, 8, 8, 3))
  train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))
  _, updated = train(variables, x)
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), variables['batch_stats'],
                         updated['batch_stats'])
  assert all(jax.tree.leaves(changed))


@pytest.mark.parametrize('cfg', [dict(name='mlp', batch_norm=True),
                                 dict(name='cnn', batch_norm=True),
                                 dict(name='wide_resnet', depth=10, width=1)])
def test_ghost_batch_size_reaches_the_batch_norm_layers(cfg):
  model = build_model(cfg, 10, ghost_batch_size=4)
  x = jax.ShapeDtypeStruct((6, 8, 8, 3), jnp.float32)
  variables = jax.eval_shape(lambda: _init(model, x.shape))
  with pytest.raises(ConfigError, match='ghost_batch_size 4 does not divide the micro-batch of '
                                        '6 examples on 1 device'):
    jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']),
                   variables, x)


@pytest.mark.multidevice
@pytest.mark.parametrize('cfg', [dict(name='mlp', batch_norm=True),
                                 dict(name='cnn', batch_norm=True),
                                 dict(name='wide_resnet', depth=10, width=1)])
def test_axis_name_reaches_the_batch_norm_layers(cfg):
  # 6 examples per device cannot hold ghosts of 4; 8 devices' 48 can, if every layer
  # knows the axis.
  model = build_model(cfg, 10, ghost_batch_size=4, axis_name=AXIS)
  x = jax.ShapeDtypeStruct((8, 6, 8, 8, 3), jnp.float32)
  variables = jax.eval_shape(lambda: _init(model, x.shape[1:]))
  train = jax.pmap(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']),
                   axis_name=AXIS, in_axes=(None, 0))
  logits, _ = jax.eval_shape(train, variables, x)
  assert logits.shape == (8, 6, 10)


def test_unknown_model_name_is_an_error_naming_it():
  with pytest.raises(ConfigError, match=r"^model.name: unknown model 'foo' "
                                        r'\(known: cnn, mlp, wide_resnet\)$'):
    build_model({'name': 'foo'}, 10, 0)


@pytest.mark.parametrize('cfg, num_classes, ghost, message', [
    (dict(name='mlp', depth=3), 10, 0, r"^model\.depth: unknown parameter of model 'mlp' "
     r'\(known: widths, batch_norm, dropout\)$'),
    (dict(name='mlp', num_classes=3), 10, 0, r"^model\.num_classes: unknown parameter of model "
     r"'mlp' \(known: widths, batch_norm, dropout\)$"),
    (dict(name='mlp', widths=(75, 0)), 10, 0, r'model.widths .* got \(75, 0\)'),
    (dict(name='mlp', widths=(75, 45), dropout=(0.5,)), 10, 0, r'model.dropout \(0.5,\)'),
    (dict(name='mlp', dropout=1.0), 10, 0, r'model.dropout .* got 1.0'),
    (dict(name='mlp', batch_norm='yes'), 10, 0, r"model.batch_norm .* got 'yes'"),
    (dict(name='cnn', features=(32, -1)), 10, 0, r'model.features .* got \(32, -1\)'),
    (dict(name='wide_resnet', depth=15), 10, 0, r'model.depth .* got 15'),
    (dict(name='wide_resnet', width=0), 10, 0, r'model.width .* got 0'),
    (dict(name='mlp'), 0, 0, r'num_classes .* got 0'),
    (dict(name='mlp'), 10, -1, r'ghost_batch_size .* got -1'),
])
def test_bad_model_parameter_is_an_error_naming_it(cfg, num_classes, ghost, message):
  with pytest.raises(ConfigError, match=message):
    build_model(cfg, num_classes, ghost)
