"""The model registry: ``config.model.name`` and its parameters to a Flax module."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import flax.linen as nn
import ml_collections

from lr_study.errors import ConfigError
from lr_study.models.checks import non_negative_int, positive_int

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}
# Set from the dataset and from ``config.ghost_batch_size``, never in ``config.model``.
_PASSED_BY_CALLER = ('num_classes', 'ghost_batch_size')


def register(name: str) -> Callable[[Builder], Builder]:
  """Registers ``builder(num_classes, ghost_batch_size, **params) -> nn.Module``."""

  def wrap(builder: Builder) -> Builder:
    if name in _REGISTRY:
      raise ValueError(f'model {name!r} registered twice')
    _REGISTRY[name] = builder
    return builder

  return wrap


def registered_models() -> list[str]:
  return sorted(_REGISTRY)


def model_parameters(name: str) -> list[str]:
  """The parameters ``config.model`` may set for model ``name``."""
  return sorted(p for p in inspect.signature(_REGISTRY[name]).parameters
                if p not in _PASSED_BY_CALLER)


def build_model(model_cfg: ml_collections.ConfigDict | Mapping[str, Any], num_classes: int,
                ghost_batch_size: int) -> nn.Module:
  """Builds the model named by ``model_cfg.name`` from the rest of ``model_cfg``.

  Every model is called as ``model.apply(variables, x, train=...)`` with ``x`` float32
  ``[B, H, W, C]`` and returns logits ``[B, num_classes]``.

  Raises:
    ConfigError: one line naming the bad name or parameter, e.g.
      ``model.name: unknown model 'foo' (known: cnn, mlp, wide_resnet)``.
  """
  params = dict(model_cfg.to_dict() if isinstance(model_cfg, ml_collections.ConfigDict)
                else model_cfg)
  name = params.pop('name', None)
  if name not in _REGISTRY:
    raise ConfigError(
        f'model.name: unknown model {name!r} (known: {", ".join(registered_models())})')
  known = model_parameters(name)
  for key in params:
    if key not in known:
      raise ConfigError(
          f'model ({name}): unknown parameter {key!r} (known: {", ".join(known)})')
  positive_int('num_classes', num_classes)
  non_negative_int('ghost_batch_size', ghost_batch_size)
  return _REGISTRY[name](num_classes=num_classes, ghost_batch_size=ghost_batch_size, **params)
