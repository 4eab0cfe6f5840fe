"""Registries: plain dicts from a config name to its builder, and the one helper that
builds from a config ``{'name': ..., **params}``.

Every configurable family keeps one dict (``SCHEDULES`` in ``lr_study.schedules.base``,
``BATCH_SCHEDULES``, ``MODELS``, ``OPTIMIZERS``); :func:`register` fills it and
:func:`build` looks ``config.name`` up and calls its builder with the rest of ``config``
as keyword arguments, in the manner of Flax/ml_collections configs, with every bad input
turned into one line in one wording (``lr_study.errors.ConfigError``):

* an unknown name: ``model.name: unknown model 'foo' (known: cnn, mlp, wide_resnet)``;
* an unknown parameter: ``lr_schedule.gamma: unknown parameter of schedule 'constant'
  (known: init_value, clock)``;
* a missing parameter: ``batch_schedule.boundaries: missing, batch schedule 'multistep'
  needs it``;
* a builder's ``ConfigError`` (its message starts with the parameter's name) gets the
  config path in front: ``optimizer.momentum must be in [0, 1), got 1.0``.

Arguments that the caller supplies (a model's ``num_classes``, from the dataset) are
passed to the builders that take them and may not appear in the config.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Generic, Mapping, TypeVar

import ml_collections

from lr_study.errors import ConfigError

T = TypeVar('T')


@dataclasses.dataclass(frozen=True)
class Built(Generic[T]):
  """What :func:`build` built: the config name, every argument of the builder (defaults
  filled in, caller arguments left out) and the builder's value."""

  name: str
  arguments: dict[str, Any]
  value: T


def register(registry: dict[str, Callable[..., T]], name: str
             ) -> Callable[[Callable[..., T]], Callable[..., T]]:
  """A decorator that adds ``builder`` to ``registry`` under ``name`` (once)."""

  def add(builder: Callable[..., T]) -> Callable[..., T]:
    if name in registry:
      raise ValueError(f'{name!r} registered twice')
    registry[name] = builder
    return builder

  return add


def build(registry: Mapping[str, Callable[..., T]], config: Any, path: str, kind: str,
          **caller: Any) -> Built[T]:
  """Builds ``config`` with the builder ``registry[config.name]``.

  Args:
    registry: name → builder.
    config: a ``ConfigDict`` or mapping with ``name`` and the builder's parameters.
    path: the config path in messages (``'lr_schedule'``).
    kind: what the builders build, as messages say it (``'batch schedule'``).
    **caller: arguments the caller supplies; passed to builders that take them.

  Raises:
    ConfigError: one line naming the bad name or parameter under ``path``.
  """
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise ConfigError(f"{path} must be a {kind} config (a dict with a 'name'), got {config!r}")
  params = dict(config)
  name = params.pop('name', None)
  if not isinstance(name, str) or name not in registry:
    raise ConfigError(f'{path}.name: unknown {kind} {name!r} (known: {", ".join(sorted(registry))})')
  signature = inspect.signature(registry[name])
  known = [p for p in signature.parameters if p not in caller]
  for key in params:
    if key not in known:
      raise ConfigError(f'{path}.{key}: unknown parameter of {kind} {name!r} '
                        f'(known: {", ".join(known)})')
  for key, parameter in signature.parameters.items():
    if parameter.default is inspect.Parameter.empty and key not in params and key not in caller:
      raise ConfigError(f'{path}.{key}: missing, {kind} {name!r} needs it')
  arguments = {**params, **{k: v for k, v in caller.items() if k in signature.parameters}}
  try:
    value = registry[name](**arguments)
  except ConfigError as e:
    raise ConfigError(f'{path}.{e}') from None
  bound = signature.bind(**arguments)
  bound.apply_defaults()
  return Built(name, {k: v for k, v in bound.arguments.items() if k not in caller}, value)
