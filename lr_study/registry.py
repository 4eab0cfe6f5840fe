"""A registry of named builders, built from a config ``{'name': ..., **params}``.

Every configurable family (LR schedules, batch-size schedules, models, optimizers) keeps
one :class:`Registry`: builders register under a config name, and
``registry.build(config, prefix)`` looks ``config.name`` up and calls its builder with the
rest of ``config`` as keyword arguments, in the manner of Flax/ml_collections configs
(and PyTorch's ``getattr(torch.optim, name)(**kwargs)``) but with every bad input turned
into one line that names it (``lr_study.errors.ConfigError``), before anything runs:

* an unknown ``name``: ``{prefix}.name: unknown {kind} 'foo' (known: a, b, c)``;
* an unknown or missing parameter, worded by the registry's :class:`ParameterMessages`,
  e.g. ``lr_schedule.gamma: unknown parameter of schedule 'constant' (known: ...)``;
* a ``ConfigError`` from the builder, whose message starts with the bad parameter's name,
  gets the config path in front: ``lr_schedule.boundaries must increase, got (60, 30)``.

Parameters that the caller supplies (``num_classes`` of a model, from the dataset) are
declared as ``caller_parameters``: they are passed to the builders that take them and may
not appear in the config.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Generic, Mapping, TypeVar

import ml_collections

from lr_study.errors import ConfigError

T = TypeVar('T')
Builder = Callable[..., T]


@dataclasses.dataclass(frozen=True)
class ParameterMessages:
  """Templates of the one-line errors for an unknown or a missing parameter.

  Fields: ``{prefix}`` (the config path), ``{kind}``, ``{name}`` (the config name),
  ``{key}`` (the parameter) and ``{known}`` (the parameters the config may set).
  """

  unknown: str
  missing: str


# ``lr_schedule.gamma: unknown parameter of schedule 'constant' (known: init_value, ...)``
BY_PATH = ParameterMessages(
    unknown='{prefix}.{key}: unknown parameter of {kind} {name!r} (known: {known})',
    missing='{prefix}.{key}: missing, {kind} {name!r} needs it')
# ``model (mlp): unknown parameter 'depth' (known: widths, ...)``
BY_NAME = ParameterMessages(
    unknown='{prefix} ({name}): unknown parameter {key!r} (known: {known})',
    missing='{prefix} ({name}): missing parameter {key!r}')
# ``batch_schedule (constant): got an unexpected keyword argument 'factor'``, as Python says it
AS_PYTHON = ParameterMessages(
    unknown='{prefix} ({name}): got an unexpected keyword argument {key!r}',
    missing='{prefix} ({name}): missing a required argument: {key!r}')


@dataclasses.dataclass(frozen=True)
class Built(Generic[T]):
  """What :meth:`Registry.build_with_arguments` built, and from what.

  Attributes:
    name: the config name.
    arguments: every argument of the builder, defaults filled in.
    value: what the builder returned.
  """

  name: str
  arguments: dict[str, Any]
  value: T


@dataclasses.dataclass(frozen=True)
class _Entry(Generic[T]):
  builder: Builder[T]
  signature: inspect.Signature
  metadata: Mapping[str, Any]


class Registry(Generic[T]):
  """Builders of one kind of object, by config name.

  Args:
    kind: what it builds, as the messages say it (``'schedule'``, ``'batch schedule'``).
    messages: the wording of unknown and missing parameter errors.
    caller_parameters: builder parameters that the caller passes to :meth:`build`,
      never the config.
    prefix_errors: whether a builder's ``ConfigError`` gets ``{prefix}.`` in front;
      ``False`` where the builders name the full config path themselves.
  """

  def __init__(self, kind: str, *, messages: ParameterMessages = BY_PATH,
               caller_parameters: tuple[str, ...] = (), prefix_errors: bool = True) -> None:
    self.kind = kind
    self._messages = messages
    self._caller_parameters = caller_parameters
    self._prefix_errors = prefix_errors
    self._entries: dict[str, _Entry[T]] = {}

  def register(self, name: str, **metadata: Any) -> Callable[[Builder[T]], Builder[T]]:
    """Registers ``builder(**params) -> T`` under ``name``, with ``metadata`` for
    :meth:`metadata`; a name registers once."""

    def wrap(builder: Builder[T]) -> Builder[T]:
      if name in self._entries:
        raise ValueError(f'{self.kind} {name!r} registered twice')
      self._entries[name] = _Entry(builder, inspect.signature(builder), dict(metadata))
      return builder

    return wrap

  def names(self) -> list[str]:
    """The registered names, sorted."""
    return sorted(self._entries)

  def metadata(self, name: str) -> Mapping[str, Any]:
    """The metadata ``name`` was registered with."""
    return self._entries[name].metadata

  def parameters(self, name: str) -> list[str]:
    """The parameters a config of ``name`` may set, in the builder's order."""
    return [p for p in self._entries[name].signature.parameters
            if p not in self._caller_parameters]

  def build(self, config: ml_collections.ConfigDict | Mapping[str, Any], prefix: str,
            **caller_kwargs: Any) -> T:
    """The object built by the builder that ``config.name`` names, from the rest of
    ``config`` and those of ``caller_kwargs`` that the builder takes.

    Raises:
      ConfigError: one line naming the bad name or parameter, under the config path
        ``prefix``.
    """
    return self.build_with_arguments(config, prefix, **caller_kwargs).value

  def build_with_arguments(self, config: ml_collections.ConfigDict | Mapping[str, Any],
                           prefix: str, **caller_kwargs: Any) -> Built[T]:
    """As :meth:`build`, with the name and the builder's arguments, defaults filled in."""
    unexpected = sorted(set(caller_kwargs) - set(self._caller_parameters))
    if unexpected:
      raise TypeError(f'{self.kind} builders take no caller parameters {unexpected}')
    params = self._as_dict(config, prefix)
    name = params.pop('name', None)
    if not isinstance(name, str) or name not in self._entries:
      raise ConfigError(
          f'{prefix}.name: unknown {self.kind} {name!r} (known: {", ".join(self.names())})')
    entry = self._entries[name]
    known = self.parameters(name)
    fields = dict(prefix=prefix, kind=self.kind, name=name, known=', '.join(known))
    for key in params:
      if key not in known:
        raise ConfigError(self._messages.unknown.format(key=key, **fields))
    params.update((k, v) for k, v in caller_kwargs.items() if k in entry.signature.parameters)
    for key, parameter in entry.signature.parameters.items():
      if parameter.default is inspect.Parameter.empty and key not in params:
        raise ConfigError(self._messages.missing.format(key=key, **fields))
    try:
      value = entry.builder(**params)
    except ConfigError as e:
      if not self._prefix_errors:
        raise
      raise ConfigError(f'{prefix}.{e}') from None
    bound = entry.signature.bind(**params)
    bound.apply_defaults()
    return Built(name, dict(bound.arguments), value)

  def _as_dict(self, config: Any, prefix: str) -> dict[str, Any]:
    if isinstance(config, ml_collections.ConfigDict):
      return config.to_dict()
    if isinstance(config, Mapping):
      return dict(config)
    raise ConfigError(
        f"{prefix} must be a {self.kind} config (a dict with a 'name'), got {config!r}")
