"""The model registry: ``config.model.name`` and its parameters to a Flax module."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from lr_study import checks, registry

# Builders are ``builder(num_classes, ghost_batch_size, axis_name, dtype, **params) ->
# nn.Module``. ``num_classes`` comes from the dataset, ``ghost_batch_size`` from
# ``config.ghost_batch_size``, ``axis_name`` from the train step and ``dtype`` (the
# compute dtype) from ``config.compute_dtype``, never from ``config.model``.
MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
  return registry.register(MODELS, name)


def build_model(model_cfg: ml_collections.ConfigDict | Mapping[str, Any], num_classes: int,
                ghost_batch_size: int, axis_name: str | None = None,
                dtype: str = 'float32') -> nn.Module:
  """Builds the model named by ``model_cfg.name`` from the rest of ``model_cfg``.

  Every model is called as ``model.apply(variables, x, train=...)`` with ``x`` float32
  ``[B, H, W, C]`` and returns logits ``[B, num_classes]``, computed in ``dtype``
  (``'float32'`` or ``'bfloat16'``) from float32 parameters; batch norm keeps its
  statistics in float32 (``GhostBatchNorm``). With ``axis_name`` (the
  train step's pmap axis, ``lr_study.runtime.devices.AXIS``), ghost batches are slices
  of the global micro-batch spread over that axis when applied inside the pmap
  (``GhostBatchNorm``); outside it, and with ``None``, the model is on one device.

  Raises:
    ConfigError: one line naming the bad name or parameter, e.g.
      ``model.name: unknown model 'foo' (known: cnn, mlp, wide_resnet)``.
  """
  return registry.build(MODELS, model_cfg, 'model', 'model',
                        num_classes=checks.integer('num_classes', num_classes, 1),
                        ghost_batch_size=checks.integer('ghost_batch_size', ghost_batch_size, 0),
                        axis_name=axis_name, dtype=jnp.dtype(dtype)).value
