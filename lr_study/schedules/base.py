"""The learning-rate schedule type and its registry.

A schedule is a pure function of one clock value ``t``:

* ``clock='epoch'``: ``t`` is the 0-based epoch, fractional inside an epoch
  (``t = e + i / updates_per_epoch`` during update ``i`` of epoch ``e``);
* ``clock='update'``: ``t`` is the number of parameter updates already applied
  (0 for the first update).

``stepping='per_epoch'`` follows PyTorch's per-epoch ``scheduler.step()``: during
0-based epoch ``e`` the LR is ``f(e)``, so the schedule is evaluated at ``floor(t)``.
``stepping='continuous'`` evaluates ``f(t)`` at every update.

Schedules are jnp-traceable: the training step evaluates them on the device from the
update counter, so the LR reaches the compiled step as data and never recompiles it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Mapping

import jax.numpy as jnp
import ml_collections
import numpy as np

from lr_study.errors import ConfigError

Clock = Literal['epoch', 'update']
Stepping = Literal['per_epoch', 'continuous']
Dynamic = Literal['reduce_on_plateau', 'manual']
ScalarFn = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class LRSchedule:
  """A learning-rate schedule ``t -> LR`` on a declared clock.

  Attributes:
    name: the registry name it was built from.
    fn: ``f(t)``, jnp-traceable; also accepts Python floats and NumPy arrays.
    clock: what ``t`` counts, ``'epoch'`` or ``'update'``.
    stepping: ``'per_epoch'`` (evaluated at ``floor(t)``) or ``'continuous'``.
    init_value: the LR at ``t = 0``.
    boundaries: clock values at which a piecewise-constant schedule jumps; the
      training plan splits its phases there. Empty for smooth schedules.
    dynamic: ``None`` for a fixed schedule; ``'reduce_on_plateau'`` or ``'manual'``
      when the training loop changes the LR at run time (as a multiplier that reaches
      the step as data).
    params: the parameters it was built with (the dynamic controllers read theirs here).
  """

  name: str
  fn: ScalarFn
  clock: Clock
  stepping: Stepping
  init_value: float
  boundaries: tuple[float, ...] = ()
  dynamic: Dynamic | None = None
  params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __call__(self, t: Any) -> Any:
    """The LR at clock value ``t`` (a scalar or array, Python, NumPy or jnp)."""
    if self.stepping == 'per_epoch':
      t = jnp.floor(t) if isinstance(t, jnp.ndarray) else np.floor(t)
    return self.fn(t)


Builder = Callable[..., LRSchedule]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
  """Registers ``builder(**params) -> LRSchedule`` under ``name``."""

  def wrap(builder: Builder) -> Builder:
    if name in _REGISTRY:
      raise ValueError(f'schedule {name!r} registered twice')
    _REGISTRY[name] = builder
    return builder

  return wrap


def registered_schedules() -> list[str]:
  return sorted(_REGISTRY)


def build_lr_schedule(config: ml_collections.ConfigDict | Mapping[str, Any],
                      prefix: str = 'lr_schedule') -> LRSchedule:
  """Builds the schedule named by ``config.name`` from the rest of ``config``.

  Raises:
    ConfigError: one line naming the bad name or parameter, e.g.
      ``lr_schedule.name: unknown schedule 'foo' (known: constant, ...)``.
  """
  params = dict(config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config)
  name = params.pop('name', None)
  if name not in _REGISTRY:
    raise ConfigError(
        f'{prefix}.name: unknown schedule {name!r} (known: {", ".join(registered_schedules())})')
  try:
    return _REGISTRY[name](**params)
  except TypeError as e:  # an unknown or missing keyword argument
    raise ConfigError(f'{prefix} ({name}): {e}') from None
  except ConfigError as e:
    raise ConfigError(f'{prefix} ({name}): {e}') from None
