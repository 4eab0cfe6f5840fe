r"""A study in a fraction of its epochs: ``config.epochs_scale``, every epoch boundary moved.

    python launch.py --config=experiments/mnist_decay_vs_batch.py --config.epochs_scale=0.1

runs the MNIST study in 3 epochs instead of 30, its LR and batch steps at epochs 1 and 2
instead of 10 and 20, into ``runs/mnist_decay_vs_batch-epochs_scale=0.1``. With scale s
and R(x) = ⌊x + ½⌋, the rounding to whole epochs (half up, exact for the decimal s):

    num_epochs' = R(s · num_epochs),    v' = R(s · v)

for every epoch-valued key v of an epoch-clock schedule, the study's and each variant's
(:data:`LR_KEYS`, :data:`BATCH_KEYS`; a wrapper's inner ``schedule`` and
``match_noise``'s ``reference`` too). Keys on the update clock stay, as do the rates of
the smooth decays (``exponential``'s k, ``power``'s γ, ...: the shortened run follows the
first s of their curve), a ramp's ``over`` (already a fraction of the run) and the
patience of the plateau rules (evaluations).

Shortening is refused, in one ``ConfigError`` line, where a phase would vanish: where
two boundaries, or a boundary and the run's start or end, meet (``(10, 20)`` of 30 epochs
at s = 0.05 is ``(1, 1)`` of 2), or a period becomes 0 epochs. The message names the
smallest scale of the form k/num_epochs that keeps every phase.

The config records s: a run's ``metadata.json`` holds ``epochs_scale`` beside the
unscaled keys, and ``lr_study.plan.build_plan`` plans the moved ones (:func:`apply`), so
the plan, the logs and the figures are the shortened run's. This module imports no jax.
"""

from __future__ import annotations

import dataclasses
import fractions
import math
from typing import Any, Iterator, Mapping

import ml_collections

from lr_study import checks
from lr_study.errors import ConfigError

# The epoch-valued keys of each registered schedule, on the epoch clock.
LR_KEYS = {'multistep': ('boundaries',), 'step': ('step_size',), 'cosine': ('decay_steps',),
           'linear': ('transition_steps',), 'staircase': ('step',), 'warmup': ('length',)}
BATCH_KEYS = {'multistep': ('boundaries',), 'hybrid': ('boundaries',), 'geometric': ('every',)}
SCHEDULES = {'lr_schedule': LR_KEYS, 'batch_schedule': BATCH_KEYS}


@dataclasses.dataclass(frozen=True)
class Move:
  """One key shortened: its config path, old and new value, in a run of ``epochs`` epochs
  that becomes ``new_epochs``."""

  path: str
  old: Any
  new: Any
  epochs: int
  new_epochs: int

  @property
  def vanishes(self) -> bool:
    """A nonempty interval between 0, the boundaries and the end becomes empty, or a
    period (or the run) becomes 0 epochs."""
    if not isinstance(self.old, tuple):
      return self.new < 1 and self.old > 0
    edges = list(zip((0, *self.old, self.epochs), (0, *self.new, self.new_epochs)))
    return any(b > a and b_new <= a_new for (a, a_new), (b, b_new) in zip(edges, edges[1:]))


def _round(scale: fractions.Fraction, value: Any) -> int:
  """R(s · v) = ⌊s · v + ½⌋."""
  return math.floor(scale * fractions.Fraction(value) + fractions.Fraction(1, 2))


def _on_epoch_clock(schedule: Mapping[str, Any]) -> bool:
  """A wrapper runs on its inner schedule's clock; the others say theirs (default epoch)."""
  inner = schedule.get('schedule')
  if isinstance(inner, Mapping):
    return _on_epoch_clock(inner)
  return schedule.get('clock', 'epoch') == 'epoch'


def _schedule_moves(schedule: Any, path: str, keys: Mapping[str, tuple[str, ...]],
                    scale: fractions.Fraction, epochs: int) -> Iterator[Move]:
  """The moves of one schedule config's epoch-valued keys, nested schedules' too."""
  if not isinstance(schedule, Mapping):
    return
  for nested in ('schedule', 'reference'):
    yield from _schedule_moves(schedule.get(nested), f'{path}.{nested}', LR_KEYS, scale, epochs)
  if not _on_epoch_clock(schedule):
    return
  for key in keys.get(schedule.get('name'), ()):
    if key in schedule:
      old = schedule[key]
      where = f'{path}.{key}'
      if isinstance(old, (list, tuple)):
        old = tuple(old)
        new = tuple(_round(scale, checks.number(where, v)) for v in old)
      else:
        new = _round(scale, checks.number(where, old))
      yield Move(where, old, new, epochs, _round(scale, epochs))


def _all_moves(plain: Mapping[str, Any], scale: fractions.Fraction) -> list[Move]:
  """The run's epochs first, then every epoch-valued key of the study's and each
  variant's schedules."""
  epochs = checks.integer('num_epochs', plain['num_epochs'], 1)
  found = [Move('num_epochs', epochs, _round(scale, epochs), epochs, _round(scale, epochs))]
  owners = [('', plain), *((f'variants.{name}.', variant)
                           for name, variant in (plain.get('variants') or {}).items())]
  for prefix, owner in owners:
    own = epochs
    if prefix and 'num_epochs' in owner:
      own = checks.integer(f'{prefix}num_epochs', owner['num_epochs'], 1)
      found.append(Move(f'{prefix}num_epochs', own, _round(scale, own), own, _round(scale, own)))
    for key, keys in SCHEDULES.items():
      found.extend(_schedule_moves(owner.get(key), f'{prefix}{key}', keys, scale, own))
  return found


def _plain(config: ml_collections.ConfigDict | Mapping[str, Any]) -> Mapping[str, Any]:
  return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config


def _exact(scale: Any) -> fractions.Fraction:
  return fractions.Fraction(repr(checks.positive('epochs_scale', scale)))


def moves(config: ml_collections.ConfigDict | Mapping[str, Any], scale: float) -> list[Move]:
  """Every key that shortening ``config`` (a study's or one run's) by ``scale`` moves,
  ``num_epochs`` first.

  Raises:
    ConfigError: one line where a phase would vanish, e.g. ``epochs_scale 0.05 moves
      variants.decay.lr_schedule.boundaries (10, 20) of 30 epochs to (1, 1) of 2: a phase
      would vanish (the smallest epochs_scale that keeps every phase: 0.1, 3 epochs)``.
  """
  plain = _plain(config)
  found = _all_moves(plain, _exact(scale))
  bad = next((move for move in found if move.vanishes), None)
  if bad is None:
    return found
  what = (f'makes the {bad.old} epochs {bad.new}' if bad.path == 'num_epochs' else
          f'moves {bad.path} {_show(bad.old)} of {bad.epochs} epochs to {_show(bad.new)} of '
          f'{bad.new_epochs}: a phase would vanish')
  epochs = found[0].old
  smallest = next((s for s in (float(f'{k / epochs:.3g}') for k in range(1, epochs + 1))
                   if not any(m.vanishes for m in _all_moves(plain, _exact(s)))), None)
  hint = (f' (the smallest epochs_scale that keeps every phase: {smallest:g}, '
          f'{_round(_exact(smallest), epochs)} epochs)' if smallest else '')
  raise ConfigError(f'epochs_scale {scale:g} {what}{hint}')


def _show(value: Any) -> str:
  return repr(tuple(value)) if isinstance(value, tuple) else f'{value:g}'


def shorten(config: ml_collections.ConfigDict, scale: float) -> ml_collections.ConfigDict:
  """A copy of ``config`` in ``scale`` of its epochs: every :func:`moves` key set to its
  new value, ``epochs_scale`` 1 (so that shortening is applied once)."""
  plain = ml_collections.ConfigDict(_plain(config))
  for move in moves(plain, scale):
    *parents, leaf = move.path.split('.')
    node = plain
    for key in parents:
      node = node[key]
    node[leaf] = move.new
  if 'epochs_scale' in plain:
    plain.epochs_scale = 1.0
  return plain


def apply(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config that a run of ``config`` plans and trains: ``config`` itself at
  ``epochs_scale`` 1 (or without the key), else :func:`shorten` by it."""
  scale = config.get('epochs_scale', 1.0)
  return config if scale == 1 else shorten(config, scale)


def describe(config: ml_collections.ConfigDict) -> str:
  """What ``config.epochs_scale`` moves, in one line ('' at scale 1), e.g. ``epochs_scale
  0.1: 30 epochs -> 3; lr_schedule.boundaries (10, 20) -> (1, 2) (decay);
  batch_schedule.boundaries (10, 20) -> (1, 2) (hybrid, increase)``: each change once,
  with the variants that make it (``shared`` for the study's own keys)."""
  scale = config.get('epochs_scale', 1.0)
  if scale == 1:
    return ''
  epochs, *found = moves(config, scale)
  owners: dict[str, list[str]] = {}
  for move in found:
    parts = move.path.split('.')
    owner, key = (parts[1], '.'.join(parts[2:])) if parts[0] == 'variants' else ('', move.path)
    owners.setdefault(f'{key} {_show(move.old)} -> {_show(move.new)}', []).append(owner)
  return '; '.join([f'epochs_scale {scale:g}: {epochs.old} epochs -> {epochs.new}', *(
      change + (f' ({", ".join(o or "shared" for o in names)})' if any(names) else '')
      for change, names in owners.items())])
