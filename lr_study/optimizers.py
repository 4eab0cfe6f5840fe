"""The paper's four optimizers as optax transformations whose LR is data.

With gradient ``g_t`` of the loss at parameters ``p_t``, LR ``η_t`` and weight decay
``λ``, every optimizer first adds coupled L2 weight decay, as ``weight_decay`` does in
PyTorch's ``torch.optim.SGD`` and ``torch.optim.Adam`` (not AdamW's decoupled decay), to
every parameter, batch-norm scales and biases included:

    g_t ← g_t + λ · p_t

then updates, in PyTorch's conventions (``torch.optim.SGD`` docs, dampening 0):

* ``sgd``:      p_{t+1} = p_t − η_t · g_t
* ``momentum``: v_{t+1} = m · v_t + g_t;  p_{t+1} = p_t − η_t · v_{t+1}
  (heavy ball, Polyak 1964; v_0 = 0)
* ``nesterov``: v_{t+1} = m · v_t + g_t;  p_{t+1} = p_t − η_t · (g_t + m · v_{t+1})
  (Nesterov 1983 in the form of Sutskever, Martens, Dahl & Hinton 2013)
* ``adam``:     a_{t+1} = b1 · a_t + (1 − b1) · g_t;  s_{t+1} = b2 · s_t + (1 − b2) · g_t²;
  p_{t+1} = p_t − η_t · â / (√ŝ + eps), â = a_{t+1} / (1 − b1^{t+1}),
  ŝ = s_{t+1} / (1 − b2^{t+1})  (Kingma & Ba 2015)

Each is built with ``optax.inject_hyperparams``, so ``opt_state.hyperparams`` holds
``learning_rate`` (0 until the train step sets it before every update, see
``with_learning_rate``), ``weight_decay``, and ``momentum`` or ``b1``, ``b2``, ``eps``,
all float32 arrays. ``update(grads, opt_state, params)`` needs ``params`` for the decay.

``config.optimizer`` keys, with defaults: ``name``; ``weight_decay=0.0`` for all;
``momentum=0.9`` for ``momentum`` and ``nesterov`` (``sgd`` accepts only 0);
``b1=0.9, b2=0.999, eps=1e-8`` for ``adam``.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lr_study.errors import ConfigError

_DEFAULTS: dict[str, dict[str, float]] = {
    'sgd': {'momentum': 0.0, 'weight_decay': 0.0},
    'momentum': {'momentum': 0.9, 'weight_decay': 0.0},
    'nesterov': {'momentum': 0.9, 'weight_decay': 0.0},
    'adam': {'b1': 0.9, 'b2': 0.999, 'eps': 1e-8, 'weight_decay': 0.0},
}


def _coupled_l2(weight_decay: jax.Array, inner: optax.GradientTransformation
                ) -> optax.GradientTransformation:
  """``g ← g + λ·p``, then ``inner``."""
  return optax.chain(optax.add_decayed_weights(weight_decay), inner)


def _sgd(learning_rate: jax.Array, weight_decay: jax.Array) -> optax.GradientTransformation:
  return _coupled_l2(weight_decay, optax.sgd(learning_rate))


def _heavy_ball(learning_rate: jax.Array, momentum: jax.Array, weight_decay: jax.Array,
                nesterov: bool) -> optax.GradientTransformation:
  return _coupled_l2(weight_decay, optax.sgd(learning_rate, momentum, nesterov=nesterov))


def _adam(learning_rate: jax.Array, b1: jax.Array, b2: jax.Array, eps: jax.Array,
          weight_decay: jax.Array) -> optax.GradientTransformation:
  return _coupled_l2(weight_decay, optax.adam(learning_rate, b1, b2, eps))


def _number(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise ConfigError(f'optimizer.{name} must be a number, got {value!r}')
  return float(value)


def _resolve(optimizer_cfg: ml_collections.ConfigDict | Mapping[str, Any]
             ) -> tuple[str, dict[str, float]]:
  """The optimizer's name and its checked hyperparameters, defaults filled in."""
  params = dict(optimizer_cfg.to_dict() if isinstance(optimizer_cfg, ml_collections.ConfigDict)
                else optimizer_cfg)
  name = params.pop('name', None)
  if name not in _DEFAULTS:
    raise ConfigError(
        f'optimizer.name: unknown optimizer {name!r} (known: {", ".join(sorted(_DEFAULTS))})')
  for key in params:
    if key not in _DEFAULTS[name]:
      raise ConfigError(f'optimizer ({name}): unknown parameter {key!r} '
                        f'(known: {", ".join(sorted(_DEFAULTS[name]))})')
  hp = {k: _number(k, v) for k, v in {**_DEFAULTS[name], **params}.items()}
  if not hp['weight_decay'] >= 0:
    raise ConfigError(f'optimizer.weight_decay must be >= 0, got {hp["weight_decay"]}')
  for key in ('momentum', 'b1', 'b2'):
    if key in hp and not 0 <= hp[key] < 1:
      raise ConfigError(f'optimizer.{key} must be in [0, 1), got {hp[key]}')
  if name == 'sgd' and hp['momentum'] != 0:
    raise ConfigError(f"optimizer.momentum must be 0 for 'sgd', got {hp['momentum']} "
                      "(use name 'momentum' or 'nesterov')")
  if 'eps' in hp and not hp['eps'] > 0:
    raise ConfigError(f'optimizer.eps must be > 0, got {hp["eps"]}')
  return name, hp


def build_optimizer(optimizer_cfg: ml_collections.ConfigDict | Mapping[str, Any]
                    ) -> optax.GradientTransformationExtraArgs:
  """The optimizer named by ``optimizer_cfg.name``, its LR a 0.0 placeholder to set as data.

  Raises:
    ConfigError: one line naming the bad name or hyperparameter, e.g.
      ``optimizer.momentum must be in [0, 1), got 1.0``.
  """
  name, hp = _resolve(optimizer_cfg)
  if name == 'sgd':
    factory, kwargs = _sgd, {'weight_decay': hp['weight_decay']}
  elif name == 'adam':
    factory, kwargs = _adam, hp
  else:
    factory, kwargs = _heavy_ball, {**hp, 'nesterov': name == 'nesterov'}
  return optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32)(
      learning_rate=0.0, **kwargs)


def momentum_of(optimizer_cfg: ml_collections.ConfigDict | Mapping[str, Any]) -> float:
  """The momentum ``m`` in the noise scale ``g = ε(N/B − 1)/(1 − m)`` (Smith et al. 2018).

  ``momentum`` for ``momentum`` and ``nesterov``; 0 for ``sgd``, and 0 for ``adam``, whose
  ``b1`` averages gradients (``(1 − b1)``-weighted, not summed) so it does not enlarge the
  step as heavy-ball momentum does by ``1/(1 − m)``.
  """
  name, hp = _resolve(optimizer_cfg)
  return hp['momentum'] if name in ('momentum', 'nesterov') else 0.0


def with_learning_rate(opt_state: optax.OptState, learning_rate: jax.typing.ArrayLike
                       ) -> optax.OptState:
  """``opt_state`` whose next update uses ``learning_rate`` (jit-traceable)."""
  hyperparams = dict(opt_state.hyperparams)
  hyperparams['learning_rate'] = jnp.asarray(learning_rate, jnp.float32)
  return opt_state._replace(hyperparams=hyperparams)
