"""Optimizers: updates against hand-written NumPy, the LR as data, and config errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lr_study.errors import ConfigError
from lr_study.optimizers import build_optimizer, momentum_of, with_learning_rate

# A quadratic loss ½ Σ a_i (p_i − c_i)², gradient a ⊙ (p − c).
A = np.array([1.0, 4.0, 0.25, 2.0])
C = np.array([1.0, -2.0, 3.0, 0.5])
P0 = np.array([0.5, 1.0, -1.0, 2.0])
LRS = [0.1, 0.1, 0.05, 0.05, 0.02, 0.2]  # one per update, changed as data


def _grad(p):
  return A * (p - C)


def _numpy_reference(name: str, wd: float, m: float = 0.9, b1: float = 0.9, b2: float = 0.999,
                     eps: float = 1e-8) -> np.ndarray:
  """The PyTorch torch.optim.SGD / Adam update rules with coupled weight decay, in float64."""
  p, v, s = P0.copy(), np.zeros_like(P0), np.zeros_like(P0)
  for t, lr in enumerate(LRS, start=1):
    g = _grad(p) + wd * p
    if name == 'sgd':
      p = p - lr * g
    elif name in ('momentum', 'nesterov'):
      v = m * v + g
      p = p - lr * (g + m * v if name == 'nesterov' else v)
    else:
      v = b1 * v + (1 - b1) * g
      s = b2 * s + (1 - b2) * g * g
      p = p - lr * (v / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + eps)
  return p


def _run(tx: optax.GradientTransformation) -> np.ndarray:
  @jax.jit
  def step(p, state, lr):
    state = with_learning_rate(state, lr)
    updates, state = tx.update(jax.grad(lambda q: 0.5 * jnp.sum(A * (q - C)**2))(p), state, p)
    return optax.apply_updates(p, updates), state

  p = jnp.asarray(P0, jnp.float32)
  state = tx.init(p)
  for lr in LRS:
    p, state = step(p, state, lr)
  return np.asarray(p)


@pytest.mark.parametrize('cfg', [
    dict(name='sgd'),
    dict(name='sgd', weight_decay=0.1),
    dict(name='momentum', momentum=0.9, weight_decay=0.1),
    dict(name='nesterov', momentum=0.8, weight_decay=0.1),
    dict(name='adam', weight_decay=0.1),
    dict(name='adam', b1=0.5, b2=0.9, eps=1e-3),
])
def test_updates_match_numpy_reference_with_weight_decay(cfg):
  params = {k: v for k, v in cfg.items() if k not in ('name', 'weight_decay', 'momentum')}
  expected = _numpy_reference(cfg['name'], cfg.get('weight_decay', 0.0),
                              m=cfg.get('momentum', 0.9), **params)
  np.testing.assert_allclose(_run(build_optimizer(cfg)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize('name', ['sgd', 'momentum', 'nesterov', 'adam'])
def test_learning_rate_hyperparameter_scales_the_step(name):
  tx = build_optimizer({'name': name})
  params = jnp.asarray(P0, jnp.float32)
  state = tx.init(params)
  assert float(state.hyperparams['learning_rate']) == 0.0  # a placeholder until set
  grads = jnp.asarray(_grad(P0), jnp.float32)
  steps = {lr: tx.update(grads, with_learning_rate(state, lr), params)[0] for lr in (0.1, 0.3)}
  np.testing.assert_allclose(steps[0.3], 3 * steps[0.1], rtol=1e-6)
  assert with_learning_rate(state, 0.3).hyperparams['learning_rate'] == np.float32(0.3)


@pytest.mark.parametrize('name', ['sgd', 'momentum', 'nesterov', 'adam'])
def test_only_the_learning_rate_is_injected(name):
  state = build_optimizer({'name': name, 'weight_decay': 1e-4}).init(jnp.zeros(3))
  assert list(state.hyperparams) == ['learning_rate']


@pytest.mark.parametrize('name', ['sgd', 'momentum', 'nesterov', 'adam'])
def test_without_weight_decay_the_update_does_not_read_the_parameters(name):
  tx = build_optimizer({'name': name})
  params = jnp.asarray(P0, jnp.float32)
  state = with_learning_rate(tx.init(params), 0.1)
  grads = jnp.asarray(_grad(P0), jnp.float32)
  np.testing.assert_array_equal(tx.update(grads, state, None)[0],
                                tx.update(grads, state, 7 * params)[0])


@pytest.mark.parametrize('cfg, m', [
    (dict(name='sgd'), 0.0),
    (dict(name='sgd', momentum=0.0), 0.0),
    (dict(name='momentum'), 0.9),
    (dict(name='nesterov', momentum=0.95), 0.95),
    (dict(name='adam', b1=0.9), 0.0),
])
def test_momentum_of_is_the_heavy_ball_momentum_or_zero(cfg, m):
  assert momentum_of(cfg) == m


@pytest.mark.parametrize('cfg, message', [
    (dict(name='rmsprop'),
     r"^optimizer.name: unknown optimizer 'rmsprop' \(known: adam, momentum, nesterov, sgd\)$"),
    (dict(name='sgd', weight_decay=-1e-4), r'optimizer.weight_decay must be >= 0, got -0.0001'),
    (dict(name='momentum', momentum=1.0), r'optimizer.momentum must be in \[0, 1\), got 1.0'),
    (dict(name='nesterov', momentum=-0.1), r'optimizer.momentum must be in \[0, 1\), got -0.1'),
    (dict(name='sgd', momentum=0.9), r"optimizer.momentum must be 0 for 'sgd', got 0.9"),
    (dict(name='adam', momentum=0.9), r"^optimizer\.momentum: unknown parameter of optimizer "
     r"'adam' \(known: b1, b2, eps, weight_decay\)$"),
    (dict(name='momentum', learning_rate=0.1),
     r"^optimizer\.learning_rate: unknown parameter of optimizer 'momentum' "
     r'\(known: momentum, weight_decay\)$'),
    (dict(name='adam', b2=1.0), r'optimizer.b2 must be in \[0, 1\), got 1.0'),
    (dict(name='adam', eps=0.0), r'optimizer.eps must be > 0, got 0.0'),
    (dict(name='momentum', momentum='0.9'), r"optimizer.momentum must be a number, got '0.9'"),
])
def test_bad_optimizer_config_is_an_error_naming_it(cfg, message):
  with pytest.raises(ConfigError, match=message):
    build_optimizer(cfg)
