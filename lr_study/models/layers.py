"""Layer helpers shared by the models; call them inside a module's compact method."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lr_study.models.ghost_batch_norm import GhostBatchNorm


def norm_relu(x: jax.Array, *, batch_norm: bool, ghost_batch_size: int, train: bool,
              axis_name: str | None = None, param_dtype: Any = jnp.float32) -> jax.Array:
  """ReLU(GhostBatchNorm(x)), or ReLU(x) without batch norm (Ioffe & Szegedy 2015 order).

  Batch statistics in training (ghosts of the global micro-batch spread over the pmap
  axis ``axis_name``), running averages in evaluation; computed in float32 and returned
  in ``x``'s dtype.
  """
  if batch_norm:
    x = GhostBatchNorm(ghost_batch_size=ghost_batch_size, axis_name=axis_name,
                       param_dtype=param_dtype)(x, use_running_average=not train)
  return nn.relu(x)


def dropout(x: jax.Array, rate: float, train: bool) -> jax.Array:
  """Inverted dropout with the ``'dropout'`` rng in training; the identity otherwise."""
  return nn.Dropout(rate, deterministic=not train)(x) if rate else x
