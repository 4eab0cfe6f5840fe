"""Schedules optax lacks, in optax's own style: pure factories returning ``count -> value``,
the formula in the docstring, a doctest. The registered schedules of ``decay.py`` and
``cyclical.py`` compose them with lr_study's clock.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import optax


def exponential_rate(init_value: float, log_rate: float,
                     end_value: float | None = None) -> optax.Schedule:
  """init_value · e^(log_rate · count), as ``optax.exponential_decay`` written with a
  half-life: ``decay_rate`` ½ (2 when ``log_rate`` > 0), ``transition_steps`` ln 2/|log_rate|.

  ½ is exact in float32 and ln 2/|log_rate| is taken in float64 here; passing
  ``decay_rate=e^log_rate`` instead would let optax round it to float32 in the jitted
  step, an error that grows as count · 6e-8 (γ = 0.99994: 3.5e-4 off at count 16,000,
  against 7e-8 written as a half-life). ``end_value``: optax's bound on the value.

  >>> schedule = exponential_rate(0.2, math.log(0.95))
  >>> print(*[f'{schedule(c):.6f}' for c in range(4)])
  0.200000 0.190000 0.180500 0.171475
  """
  if log_rate == 0.0:
    return optax.exponential_decay(init_value, transition_steps=1, decay_rate=1.0,
                                   end_value=end_value)
  base = 0.5 if log_rate < 0.0 else 2.0
  return optax.exponential_decay(init_value, transition_steps=math.log(base) / log_rate,
                                 decay_rate=base, end_value=end_value)


def inverse_time_decay(init_value: float, decay_rate: float,
                       offset: float = 0.0) -> optax.Schedule:
  """init_value / (1 + decay_rate · (count + offset)); optax has none.

  Keras ``InverseTimeDecay(0.1, decay_steps=1, decay_rate=0.5)`` is ``decay_rate=0.5``:

  >>> schedule = inverse_time_decay(0.1, decay_rate=0.5)
  >>> print(*[f'{schedule(c):.4g}' for c in range(4)])
  0.1 0.06667 0.05 0.04
  """

  def schedule(count: Any) -> Any:
    return init_value / (1.0 + decay_rate * (jnp.asarray(count) + offset))

  return schedule


def inverse_sqrt_decay(init_value: float, k: float = 1.0, offset: float = 1.0) -> optax.Schedule:
  """init_value · k / √(count + offset); optax has none.

  Ng's k/√t · α0 with the mini-batch number t counted from 1 (``offset=1``):

  >>> schedule = inverse_sqrt_decay(0.2)
  >>> print(*[f'{schedule(c):.4g}' for c in (0, 3, 15, 99)])
  0.2 0.1 0.05 0.02
  """

  def schedule(count: Any) -> Any:
    return init_value * k / jnp.sqrt(jnp.asarray(count) + offset)

  return schedule
