"""The clock: where a run is after ``u`` updates, and the learning rate of its next update.

This module is the one place that turns an update count into the clock value ``t`` of
an LR schedule and into the learning rate; the plan, the compiled step and
``lr_study.optax_schedule`` all call it.

A plan is a list of phases (``lr_study.plan``). :class:`PhaseTable` holds, per phase,
its first update ``f``, first epoch ``s``, updates per epoch ``n``, global batch ``B``,
LR multiplier ``k`` (the batch schedule's: 1, or the LR decay a capped batch schedule
takes instead), and where it starts in its first epoch's order, ``o`` examples in
(0 for a phase of whole epochs), with ``U`` the examples its epochs use (``n·B`` for
whole epochs; inside a batch ramp's epoch, all of that epoch's phases together). After
``u`` updates (``u`` = 0 before the first), in the phase ``p`` with
``f_p <= u < f_{p+1}`` and ``d = u − f_p``:

    epoch(u)    = s_p + (o_p + d·B_p) / U_p    (0-based, fractional: the share of the
                                                epoch's examples used; s_p + d/n_p for
                                                whole epochs, computed so)
    position(u) = o_p + (d mod n_p)·B_p        (the update's first example in the order)
    t(u)        = epoch(u)  on the epoch clock,   u  on the update clock
    η(u)        = schedule(t(u)) · k_p · m     (m: the run-time multiplier of a dynamic
                                                schedule, 1 otherwise)

so ``η(u)`` is the LR of update ``u + 1``, optax's convention for ``schedule(count)``.
Every function takes NumPy values on the host or jnp values (traced, inside the step).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from lr_study.schedules.base import LRSchedule, array_module

_NEVER = np.iinfo(np.int32).max  # the first update of a padding phase: never reached


@flax.struct.dataclass
class PhaseTable:
  """Per phase: ``first_update``, ``start_epoch``, ``updates_per_epoch``, ``batch_size``,
  ``lr_multiplier``, ``start_offset`` and ``epoch_examples`` (``o`` and ``U`` above)."""

  first_update: Any
  start_epoch: Any
  updates_per_epoch: Any
  batch_size: Any
  lr_multiplier: Any
  start_offset: Any
  epoch_examples: Any

  @classmethod
  def from_phases(cls, phases: Sequence[Any], size: int | None = None) -> 'PhaseTable':
    """The table of ``phases`` (objects with those fields), as NumPy arrays.

    ``size`` pads it with phases that are never reached, so that tables of plans with
    different phase counts have one shape (a replanned run does not recompile).
    """
    pad = (size or len(phases)) - len(phases)
    if pad < 0:
      raise ValueError(f'{len(phases)} phases do not fit a table of {size}')
    last = phases[-1]
    column = lambda field, dtype, fill: np.asarray(
        [getattr(p, field) for p in phases] + [fill] * pad, dtype)
    return cls(first_update=column('first_update', np.int32, _NEVER),
               start_epoch=column('start_epoch', np.int32, last.start_epoch),
               updates_per_epoch=column('updates_per_epoch', np.int32, last.updates_per_epoch),
               batch_size=column('batch_size', np.int32, last.batch_size),
               lr_multiplier=column('lr_multiplier', np.float64, last.lr_multiplier),
               start_offset=column('start_offset', np.int32, last.start_offset),
               epoch_examples=column('epoch_examples', np.int32, last.epoch_examples))


def phase_index(table: PhaseTable, update: Any) -> Any:
  """The phase of the update that follows ``update`` updates."""
  xp = array_module(update)
  index = xp.searchsorted(xp.asarray(table.first_update), update, side='right') - 1
  return xp.clip(index, 0, len(table.first_update) - 1)


def _at(table: PhaseTable, field: str, index: Any) -> Any:
  xp = jnp if isinstance(index, jax.Array) else np
  return xp.asarray(getattr(table, field))[index]


def epoch_and_position(table: PhaseTable, update: Any) -> tuple[Any, Any]:
  """(whole epoch, position(u)) of the update that follows ``update`` updates: its epoch
  and the place of its first example in that epoch's order."""
  p = phase_index(table, update)
  done = update - _at(table, 'first_update', p)
  per = _at(table, 'updates_per_epoch', p)
  return (_at(table, 'start_epoch', p) + done // per,
          _at(table, 'start_offset', p) + done % per * _at(table, 'batch_size', p))


def epoch_at(table: PhaseTable, update: Any) -> Any:
  """epoch(u), fractional (module docstring)."""
  xp = array_module(update)
  p = phase_index(table, update)
  start, per, offset, used, batch = (_at(table, field, p) for field in (
      'start_epoch', 'updates_per_epoch', 'start_offset', 'epoch_examples', 'batch_size'))
  done = update - _at(table, 'first_update', p)
  whole = (offset == 0) & (used == per * batch)
  inside = (offset + xp.minimum(done, per) * batch) / used  # a ramp's phase: done <= per
  return start + xp.where(whole, done / per, inside)


def clock_value(schedule: LRSchedule, table: PhaseTable, update: Any) -> Any:
  """t(u): ``epoch(u)`` on the epoch clock, ``u`` on the update clock."""
  return epoch_at(table, update) if schedule.clock == 'epoch' else update


def learning_rate(schedule: LRSchedule, table: PhaseTable, update: Any,
                  multiplier: Any = 1.0) -> Any:
  """η(u) = schedule(t(u)) · k_p · m, the LR of the update after ``update`` updates."""
  k = _at(table, 'lr_multiplier', phase_index(table, update))
  return schedule(clock_value(schedule, table, update)) * k * multiplier
