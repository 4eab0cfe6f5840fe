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

Each is built with ``optax.inject_hyperparams`` with only the LR injected:
``opt_state.hyperparams`` holds ``learning_rate``, a float32 array (0 until the train
step sets it before every update, see ``with_learning_rate``). ``weight_decay`` and
``momentum`` or ``b1``, ``b2``, ``eps`` are static: XLA folds them into the update, and
``λ = 0`` adds no term, so the update does not read the parameters then (one pass over
them fewer per update). ``update(grads, opt_state, params)`` needs ``params`` for the
decay.

``config.optimizer`` keys, with defaults: ``name``; ``weight_decay=0.0`` for all;
``momentum=0.9`` for ``momentum`` and ``nesterov`` (``sgd`` accepts only 0);
``b1=0.9, b2=0.999, eps=1e-8`` for ``adam``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lr_study.errors import ConfigError
from lr_study import checks, registry


@dataclasses.dataclass(frozen=True)
class _Optimizer:
  """An optax factory ``factory(learning_rate, **kwargs)`` with its checked ``kwargs``, and
  the heavy-ball momentum ``m`` of the noise scale."""

  factory: Callable[..., optax.GradientTransformation]
  kwargs: dict[str, Any]
  momentum: float = 0.0


OPTIMIZERS: dict[str, Callable[..., _Optimizer]] = {}


def _coupled_l2(weight_decay: float, inner: optax.GradientTransformation
                ) -> optax.GradientTransformation:
  """``g ← g + λ·p``, then ``inner`` (only ``inner`` when ``λ = 0``)."""
  if weight_decay == 0:
    return inner
  return optax.chain(optax.add_decayed_weights(weight_decay), inner)


def _sgd(learning_rate: jax.Array, weight_decay: float) -> optax.GradientTransformation:
  return _coupled_l2(weight_decay, optax.sgd(learning_rate))


def _heavy_ball(learning_rate: jax.Array, momentum: float, weight_decay: float,
                nesterov: bool) -> optax.GradientTransformation:
  return _coupled_l2(weight_decay, optax.sgd(learning_rate, momentum, nesterov=nesterov))


def _adam(learning_rate: jax.Array, b1: float, b2: float, eps: float, weight_decay: float
          ) -> optax.GradientTransformation:
  return _coupled_l2(weight_decay, optax.adam(learning_rate, b1, b2, eps))


# --- hyperparameter checks (messages start with the name; the registry adds ``optimizer.``)

# --- the registry

@registry.register(OPTIMIZERS, 'sgd')
def _sgd_optimizer(momentum: float = 0.0, weight_decay: float = 0.0) -> _Optimizer:
  m = checks.fraction('momentum', momentum)
  if m != 0:
    raise ConfigError(f"momentum must be 0 for 'sgd', got {m} (use name 'momentum' or "
                      "'nesterov')")
  return _Optimizer(_sgd, {'weight_decay': checks.nonnegative('weight_decay', weight_decay)})


def _heavy_ball_optimizer(momentum: Any, weight_decay: Any, nesterov: bool) -> _Optimizer:
  m = checks.fraction('momentum', momentum)
  return _Optimizer(_heavy_ball, {'momentum': m, 'weight_decay': checks.nonnegative('weight_decay', weight_decay),
                                  'nesterov': nesterov}, momentum=m)


@registry.register(OPTIMIZERS, 'momentum')
def _momentum_optimizer(momentum: float = 0.9, weight_decay: float = 0.0) -> _Optimizer:
  return _heavy_ball_optimizer(momentum, weight_decay, nesterov=False)


@registry.register(OPTIMIZERS, 'nesterov')
def _nesterov_optimizer(momentum: float = 0.9, weight_decay: float = 0.0) -> _Optimizer:
  return _heavy_ball_optimizer(momentum, weight_decay, nesterov=True)


@registry.register(OPTIMIZERS, 'adam')
def _adam_optimizer(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                    weight_decay: float = 0.0) -> _Optimizer:
  e = checks.positive('eps', eps)
  return _Optimizer(_adam, {'b1': checks.fraction('b1', b1), 'b2': checks.fraction('b2', b2), 'eps': e,
                            'weight_decay': checks.nonnegative('weight_decay', weight_decay)})


def build_optimizer(optimizer_cfg: ml_collections.ConfigDict | Mapping[str, Any]
                    ) -> optax.GradientTransformationExtraArgs:
  """The optimizer named by ``optimizer_cfg.name``, its LR a 0.0 placeholder to set as data.

  Raises:
    ConfigError: one line naming the bad name or hyperparameter, e.g.
      ``optimizer.momentum must be in [0, 1), got 1.0``.
  """
  optimizer = registry.build(OPTIMIZERS, optimizer_cfg, 'optimizer', 'optimizer').value
  return optax.inject_hyperparams(optimizer.factory, static_args=tuple(optimizer.kwargs),
                                  hyperparam_dtype=jnp.float32)(
      learning_rate=0.0, **optimizer.kwargs)


def momentum_of(optimizer_cfg: ml_collections.ConfigDict | Mapping[str, Any]) -> float:
  """The momentum ``m`` in the noise scale ``g = ε(N/B − 1)/(1 − m)`` (Smith et al. 2018).

  ``momentum`` for ``momentum`` and ``nesterov``; 0 for ``sgd``, and 0 for ``adam``, whose
  ``b1`` averages gradients (``(1 − b1)``-weighted, not summed) so it does not enlarge the
  step as heavy-ball momentum does by ``1/(1 − m)``.
  """
  return registry.build(OPTIMIZERS, optimizer_cfg, 'optimizer', 'optimizer').value.momentum


def with_learning_rate(opt_state: optax.OptState, learning_rate: jax.typing.ArrayLike
                       ) -> optax.OptState:
  """``opt_state`` whose next update uses ``learning_rate`` (jit-traceable)."""
  hyperparams = dict(opt_state.hyperparams)
  hyperparams['learning_rate'] = jnp.asarray(learning_rate, jnp.float32)
  return opt_state._replace(hyperparams=hyperparams)
