"""Learning-rate schedule formulas (each registered under its config name)."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from lr_study.errors import ConfigError
from lr_study.schedules.base import LRSchedule, register


def _check_lr(name: str, value: float) -> float:
  if not value >= 0:
    raise ConfigError(f'{name} must be >= 0, got {value}')
  return float(value)


def _xp(t):
  return jnp if isinstance(t, jnp.ndarray) else np


@register('constant')
def constant(init_value: float, clock: str = 'epoch') -> LRSchedule:
  """η(t) = η0."""
  init_value = _check_lr('init_value', init_value)
  return LRSchedule('constant', lambda t: _xp(t).full_like(t, init_value, dtype=float)
                    if hasattr(t, 'shape') else init_value * 1.0,
                    clock=clock, stepping='continuous', init_value=init_value)


@register('multistep')
def multistep(init_value: float, boundaries: Sequence[float],
              factors: float | Sequence[float] = 0.1, clock: str = 'epoch') -> LRSchedule:
  """η(t) = η0 · Π_{i: t ≥ b_i} γ_i  (piecewise constant; PyTorch ``MultiStepLR``).

  The paper (Smith et al. 2018, §5.1) divides by 5 at epochs 60, 120 and 160:
  ``boundaries=(60, 120, 160), factors=0.2``.
  """
  init_value = _check_lr('init_value', init_value)
  bounds = tuple(float(b) for b in boundaries)
  if any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:])):
    raise ConfigError(f'boundaries must increase, got {tuple(boundaries)}')
  if any(b < 0 for b in bounds):
    raise ConfigError(f'boundaries must be >= 0, got {tuple(boundaries)}')
  fs = (float(factors),) * len(bounds) if np.isscalar(factors) else tuple(map(float, factors))
  if len(fs) != len(bounds):
    raise ConfigError(f'factors {tuple(fs)} do not match boundaries {bounds}')
  if any(f <= 0 for f in fs):
    raise ConfigError(f'factors must be > 0, got {tuple(fs)}')
  values = np.concatenate([[init_value], init_value * np.cumprod(fs)])

  def fn(t):
    xp = _xp(t)
    return xp.asarray(values)[xp.searchsorted(xp.asarray(bounds), t, side='right')]

  return LRSchedule('multistep', fn, clock=clock, stepping='continuous',
                    init_value=init_value, boundaries=bounds)
