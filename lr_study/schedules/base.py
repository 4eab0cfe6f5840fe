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
The same function evaluates Python floats and NumPy arrays on the host (the plan).

Builders are registered with :func:`register` (in ``SCHEDULES``, ``lr_study.registry``) and
raise ``ConfigError`` with a message that starts with the bad parameter's name;
:func:`build_lr_schedule` prefixes it with the config path, e.g.
``lr_schedule.boundaries must increase, got (60, 30)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lr_study.errors import ConfigError
from lr_study import registry
from lr_study.schedules import host_eval

Clock = Literal['epoch', 'update']
Stepping = Literal['per_epoch', 'continuous']
Dynamic = Literal['reduce_on_plateau', 'manual']
ScalarFn = Callable[[Any], Any]

CLOCKS = ('epoch', 'update')
STEPPINGS = ('per_epoch', 'continuous')
DYNAMICS = (None, 'reduce_on_plateau', 'manual')


def array_module(t: Any) -> Any:
  """``jnp`` for jax arrays and tracers, ``np`` for Python and NumPy values."""
  return jnp if isinstance(t, jax.Array) else np


@dataclasses.dataclass(frozen=True, eq=False)  # compared and hashed by identity: jit-able
class LRSchedule:
  """A learning-rate schedule ``t -> LR`` on a declared clock.

  Attributes:
    name: the registry name it was built from.
    fn: ``f(t)``, jnp-traceable; also accepts Python floats and NumPy arrays.
    clock: what ``t`` counts, ``'epoch'`` or ``'update'``.
    stepping: ``'per_epoch'`` (evaluated at ``floor(t)``; epoch clock only) or
      ``'continuous'``.
    init_value: the LR at ``t = 0``.
    boundaries: clock values at which a piecewise-constant schedule jumps; the
      training plan splits its phases there. Empty for smooth schedules.
    dynamic: ``None`` for a fixed schedule; ``'reduce_on_plateau'`` or ``'manual'``
      when the training loop changes the LR at run time (as a multiplier that reaches
      the step as data).
    params: the parameters it was built with, defaults filled in (the dynamic
      controllers read theirs here).
  """

  name: str
  fn: ScalarFn
  clock: Clock
  stepping: Stepping
  init_value: float
  boundaries: tuple[float, ...] = ()
  dynamic: Dynamic | None = None
  params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self) -> None:
    if self.clock not in CLOCKS:
      raise ConfigError(f"clock must be 'epoch' or 'update', got {self.clock!r}")
    if self.stepping not in STEPPINGS:
      raise ConfigError(f"stepping must be 'per_epoch' or 'continuous', got {self.stepping!r}")
    if self.stepping == 'per_epoch' and self.clock != 'epoch':
      raise ConfigError(f"stepping 'per_epoch' needs clock 'epoch', got clock {self.clock!r}")
    if self.dynamic not in DYNAMICS:
      raise ConfigError(f'dynamic must be one of {DYNAMICS}, got {self.dynamic!r}')

  def __call__(self, t: Any) -> Any:
    """The LR at clock value ``t`` (a scalar or array, Python, NumPy or jnp)."""
    xp = array_module(t)
    t = xp.asarray(t, dtype=float)
    if self.stepping == 'per_epoch':
      t = xp.floor(t)
    lr = self.fn(t)
    return lr if xp is jnp else np.asarray(lr, dtype=float)[()]  # a NumPy scalar for a scalar t


def make_schedule(name: str, fn: ScalarFn, *, clock: Clock, stepping: Stepping,
                  boundaries: tuple[float, ...] = (), dynamic: Dynamic | None = None,
                  params: Mapping[str, Any] | None = None) -> LRSchedule:
  """An :class:`LRSchedule` whose ``init_value`` is its own LR at ``t = 0``."""
  schedule = LRSchedule(name, fn, clock, stepping, math.nan, tuple(boundaries), dynamic,
                        dict(params or {}))
  return dataclasses.replace(schedule, init_value=float(schedule(0.0)))


def clock_fn(schedule: optax.Schedule) -> Callable[[Any], Any]:
  """The ``fn`` of an :class:`LRSchedule` from an optax schedule: ``fn(t) = schedule(t)``.

  On the device ``t`` is a float32 jax array or tracer, and ``schedule`` is called as it
  is. On the host ``t`` is a float64 NumPy value (the plan), which optax's ``jnp`` ops
  would round to float32 (``optax.piecewise_constant_schedule(0.1, {60: 0.2})`` of a
  float64 NumPy array returns a float32 jax array), so the host evaluates ``schedule``
  in float64, from its 64-bit jaxpr with NumPy (``host_eval``: no XLA compile), and
  returns float64 NumPy. The result is broadcast to t's shape:
  ``optax.constant_schedule`` returns its value whatever the count.
  """

  def fn(t: Any) -> Any:
    if isinstance(t, jax.Array):
      return jnp.broadcast_to(schedule(t), jnp.shape(t))
    count = np.asarray(t)
    return np.broadcast_to(host_eval.evaluate(schedule, count), count.shape)

  return fn


Builder = Callable[..., LRSchedule]
SCHEDULES: dict[str, Builder] = {}
EXAMPLES: dict[str, tuple[dict[str, Any], float]] = {}  # name -> (example params, span)


def register(name: str, *, example: Mapping[str, Any] | None = None,
             span: float = 100.0) -> Callable[[Builder], Builder]:
  """Registers ``builder(**params) -> LRSchedule`` under ``name``.

  ``example`` (the parameters of a typical config) and ``span`` (how much of its clock
  shows it well) feed the gallery of ``analysis.plot_schedules`` and the tests that
  run every registered schedule.
  """
  EXAMPLES[name] = (dict(example or {}), float(span))
  return registry.register(SCHEDULES, name)


def registered_schedules() -> list[str]:
  return sorted(SCHEDULES)


def schedule_example(name: str) -> tuple[dict[str, Any], float]:
  """``(config, span)``: a typical config of schedule ``name`` (with its ``name`` key) and
  the clock span that shows it."""
  example, span = EXAMPLES[name]
  return {'name': name, **example}, span


def build_lr_schedule(config: ml_collections.ConfigDict | Mapping[str, Any],
                      prefix: str = 'lr_schedule') -> LRSchedule:
  """Builds the schedule named by ``config.name`` from the rest of ``config``.

  Raises:
    ConfigError: one line naming the bad name or parameter, e.g.
      ``lr_schedule.name: unknown schedule 'foo' (known: constant, ...)`` or
      ``lr_schedule.init_value must be >= 0, got -0.1``.
  """
  built = registry.build(SCHEDULES, config, prefix, 'schedule')
  schedule = built.value
  return dataclasses.replace(schedule, name=built.name,
                             params={**built.arguments, **schedule.params})
