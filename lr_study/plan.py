"""The training plan: every phase of a run, with exact update counts, before any training.

A run is ``num_epochs`` epochs over N training examples. One epoch at global batch B is
⌊N/B⌋ updates over a fresh permutation of the training set; the last N mod B examples of
the permutation are dropped (as ``drop_remainder=True`` in ``tf.data``, ``drop_last=True``
in PyTorch's ``DataLoader``). Runs compared in a study have equal epochs, so they see
equal data, and the plan counts what differs: the updates.

The plan is a list of phases, split at every epoch where the batch size or the LR
multiplier changes and at every boundary of an epoch-clock LR schedule, so that each
phase has one batch size and, for a piecewise-constant LR, one LR. A batch ramp
(``lr_study.schedules.batch_ramp``) changes B inside epochs: its epochs get one phase per
run of equal batches, each starting where the last ended in the epoch's order, until
the ramp ends and whole epochs at its final batch follow. Each phase's batch is split
over the devices and micro-batches by ``lr_study.batching.accumulation_split``.

The LR of each update is ``lr_study.schedules.clock.learning_rate`` of the plan's phase
table (a dynamic schedule's run-time multiplier comes on top); the noise scale of a phase
is ``lr_study.schedules.noise_scale.noise_scale`` at its first update's LR.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Sequence

import ml_collections
import numpy as np

from lr_study import checks, shorten
from lr_study.batching import DeviceSplit, accumulation_split
from lr_study.errors import ConfigError
from lr_study.schedules import LRSchedule, batch_ramp, build_lr_schedule, clock
from lr_study.schedules.batch import BatchSchedule, build_batch_schedule
from lr_study.schedules.noise_scale import noise_scale
from lr_study.optimizers import momentum_of


@dataclasses.dataclass(frozen=True)
class Phase:
  """Epochs ``[start_epoch, end_epoch)`` at one global batch size.

  A batch ramp's phase lies inside one epoch (``end_epoch = start_epoch + 1``): its
  ``updates_per_epoch = updates`` start ``start_offset`` examples into the epoch's order.
  ``epoch_examples`` is what each of its epochs uses (``updates_per_epoch · batch_size``
  for whole epochs; a ramp's epoch: all its phases together). ``learning_rate`` is the
  effective LR at the phase's first update (the schedule times ``lr_multiplier``);
  ``noise_scale`` is the exact g there, ``noise_scale_approx`` ≈ εN/(B(1 − m)).
  """

  start_epoch: int
  end_epoch: int
  batch_size: int
  per_device_batch: int
  micro_batch_size: int
  accumulation_steps: int
  updates_per_epoch: int
  dropped_per_epoch: int
  start_offset: int
  epoch_examples: int
  updates: int
  first_update: int
  learning_rate: float
  lr_multiplier: float
  noise_scale: float
  noise_scale_approx: float

  @property
  def num_epochs(self) -> int:
    return self.end_epoch - self.start_epoch

  @property
  def examples_seen(self) -> int:
    return self.updates * self.batch_size


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
  """The phases of one run and the questions asked of them.

  Update ``u`` (0-based: ``u`` updates already applied) of a phase lies in epoch
  ``start_epoch + (u − first_update) / updates_per_epoch``.
  """

  phases: tuple[Phase, ...]
  num_train_examples: int
  num_epochs: int
  num_devices: int
  momentum: float
  max_per_device_batch: int
  ghost_batch_size: int
  lr_schedule: LRSchedule = dataclasses.field(compare=False, repr=False)
  batch_schedule: BatchSchedule = dataclasses.field(compare=False, repr=False)

  @property
  def total_updates(self) -> int:
    return sum(p.updates for p in self.phases)

  @property
  def examples_seen(self) -> int:
    return sum(p.examples_seen for p in self.phases)

  # --- by epoch

  def phase_index_at_epoch(self, epoch: float) -> int:
    """The index of the phase holding (0-based, possibly fractional) ``epoch``; in a
    ramp's epoch, its last phase."""
    if not 0 <= epoch < self.num_epochs:
      raise ValueError(f'epoch {epoch} outside the plan [0, {self.num_epochs})')
    starts = [p.start_epoch for p in self.phases]
    return int(np.searchsorted(starts, math.floor(epoch), side='right')) - 1

  def phase_at_epoch(self, epoch: float) -> Phase:
    return self.phases[self.phase_index_at_epoch(epoch)]

  def batch_size_at_epoch(self, epoch: float) -> int:
    """B at the end of ``epoch`` (the last batch of a ramp's epoch)."""
    return self.phase_at_epoch(epoch).batch_size

  def epoch_segments(self, epoch: int) -> list[tuple[Phase, int]]:
    """The phases that run whole epoch ``epoch``, in order, each with its first update
    in that epoch."""
    return [(p, p.first_update + (epoch - p.start_epoch) * p.updates_per_epoch)
            for p in self.phases if p.start_epoch <= epoch < p.end_epoch]

  # --- by update

  @property
  def table(self) -> clock.PhaseTable:
    return clock.PhaseTable.from_phases(self.phases)

  def _check_update(self, update: Any, allow_end: bool) -> np.ndarray:
    u = np.asarray(update)
    end = self.total_updates
    if np.any(u < 0) or np.any(u > end) or (not allow_end and np.any(u == end)):
      raise ValueError(f'update {update} outside the plan [0, {end}{"]" if allow_end else ")"}')
    return u

  def epoch_at_update(self, update: Any) -> Any:
    """The fractional 0-based epoch after ``update`` updates (``num_epochs`` at the end).

    Accepts an int or an integer array.
    """
    epoch = clock.epoch_at(self.table, self._check_update(update, allow_end=True))
    return float(epoch) if np.ndim(epoch) == 0 else epoch

  def lr_at_update(self, update: Any) -> Any:
    """The planned LR of the update after ``update`` updates (``clock.learning_rate``)."""
    lr = np.asarray(clock.learning_rate(self.lr_schedule, self.table,
                                        self._check_update(update, allow_end=False)), float)
    return float(lr) if np.ndim(lr) == 0 else lr

  # --- changes and output

  def with_batch_size_from(self, epoch: int, batch_size: int) -> TrainingPlan:
    """The plan with batch ``batch_size`` from whole epoch ``epoch`` to the end.

    For ``increase_on_plateau``: earlier epochs, LR multipliers and the LR schedule stay.
    """
    if epoch != int(epoch) or not 0 <= epoch < self.num_epochs:
      raise ValueError(f'epoch must be a whole epoch in [0, {self.num_epochs}), got {epoch}')
    sizes = [p.batch_size for p in self.phases for _ in range(p.num_epochs)]
    sizes[int(epoch):] = [int(batch_size)] * (self.num_epochs - int(epoch))
    mults = [p.lr_multiplier for p in self.phases for _ in range(p.num_epochs)]
    return _plan_from_epochs(sizes, mults, self.lr_schedule, self.batch_schedule,
                             self.num_train_examples, self.num_devices, self.momentum,
                             self.max_per_device_batch, self.ghost_batch_size)

  def to_json(self) -> dict[str, Any]:
    """A JSON-ready dict: the phases (every field) and the totals."""
    fields = ('num_train_examples', 'num_epochs', 'num_devices', 'momentum',
              'max_per_device_batch', 'ghost_batch_size', 'total_updates', 'examples_seen')
    return {'phases': [dataclasses.asdict(p) for p in self.phases],
            **{field: getattr(self, field) for field in fields},
            'lr_schedule': self.lr_schedule.name, 'lr_clock': self.lr_schedule.clock,
            'batch_schedule': self.batch_schedule.name,
            'batch_schedule_dynamic': self.batch_schedule.dynamic}


def _split_epochs(sizes: Sequence[int], mults: Sequence[float],
                  lr_schedule: LRSchedule) -> list[int]:
  """The sorted phase starts, plus the end: where (B, k) changes and at LR boundaries."""
  num_epochs = len(sizes)
  cuts = {0, num_epochs}
  cuts.update(e for e in range(1, num_epochs)
              if (sizes[e], mults[e]) != (sizes[e - 1], mults[e - 1]))
  if lr_schedule.clock == 'epoch':  # a fractional boundary gets a one-epoch phase of its own
    cuts.update(c for b in lr_schedule.boundaries for c in (math.floor(b), math.ceil(b))
                if 0 < c < num_epochs)
  return sorted(cuts)


def _phase(batch_size: int, lr_multiplier: float, start: int, end: int, per_epoch: int,
           first: int, offset: int, used: int, n: int, split: DeviceSplit) -> Phase:
  """A phase before its LR and noise scale are known (``_plan`` fills them in)."""
  return Phase(start_epoch=start, end_epoch=end, batch_size=batch_size, **split._asdict(),
               updates_per_epoch=per_epoch, dropped_per_epoch=n - used, start_offset=offset,
               epoch_examples=used, updates=per_epoch * (end - start), first_update=first,
               learning_rate=math.nan, lr_multiplier=lr_multiplier, noise_scale=math.nan,
               noise_scale_approx=math.nan)


def _ramp_phases(ramp: Any, n: int, num_epochs: int, device_split: Any) -> list[Phase]:
  """One phase per segment of a batch ramp (``batch_ramp.segments``)."""
  segments, _ = batch_ramp.segments(ramp, n, num_epochs)
  used = collections.Counter()
  for seg in segments:
    used[seg.epoch] += seg.updates * seg.batch_size
  phases, first = [], 0
  for seg in segments:
    split = device_split(seg.batch_size, f'(batch_schedule at epoch {seg.epoch}, example '
                                         f'{seg.offset})')
    phases.append(_phase(seg.batch_size, 1.0, seg.epoch, seg.epoch + 1, seg.updates, first,
                         seg.offset, used[seg.epoch], n, split))
    first += seg.updates
  return phases


def _plan_from_epochs(sizes: Sequence[int], mults: Sequence[float], lr_schedule: LRSchedule,
                      batch_schedule: BatchSchedule, num_train_examples: int, num_devices: int,
                      momentum: float, max_per_device_batch: int, ghost_batch_size: int,
                      ramp: Sequence[Phase] = ()) -> TrainingPlan:
  """The plan from each epoch's batch size and LR multiplier; a batch ``ramp``'s phases
  replace the epochs they cover."""
  n = num_train_examples
  start = ramp[-1].end_epoch if ramp else 0
  cuts = [start] + [c for c in _split_epochs(sizes, mults, lr_schedule) if c > start]
  phases, first = list(ramp), sum(p.updates for p in ramp)
  for start, end in zip(cuts, cuts[1:]):
    b, k = sizes[start], mults[start]
    if b > n:
      raise ConfigError(f'batch_schedule: batch size {b} at epoch {start} is larger than the '
                        f'{n} training examples')
    split = accumulation_split(b, num_devices, max_per_device_batch, ghost_batch_size,
                               f'(batch_schedule at epoch {start})')
    phases.append(_phase(b, k, start, end, n // b, first, 0, n // b * b, n, split))
    first += phases[-1].updates
  table = clock.PhaseTable.from_phases(phases)
  lrs = clock.learning_rate(lr_schedule, table, np.asarray([p.first_update for p in phases]))
  phases = [dataclasses.replace(
      p, learning_rate=float(lr), noise_scale=noise_scale(float(lr), p.batch_size, n, momentum),
      noise_scale_approx=noise_scale(float(lr), p.batch_size, n, momentum, approximate=True))
            for p, lr in zip(phases, lrs)]
  return TrainingPlan(tuple(phases), num_train_examples=n, num_epochs=len(sizes),
                      num_devices=num_devices, momentum=momentum,
                      max_per_device_batch=max_per_device_batch,
                      ghost_batch_size=ghost_batch_size, lr_schedule=lr_schedule,
                      batch_schedule=batch_schedule)


def build_plan(config: ml_collections.ConfigDict, num_devices: int,
               num_train_examples: int) -> TrainingPlan:
  """The plan of one run from ``config.lr_schedule``, ``config.batch_schedule``,
  ``config.num_epochs``, the momentum of ``config.optimizer`` (0 without one, and for
  ``sgd`` and ``adam``) and ``config.max_per_device_batch`` (0: no limit), shortened by
  ``config.epochs_scale`` (``lr_study.shorten.apply``).

  A dynamic ``increase_on_plateau`` schedule is planned at its initial batch size, and
  every batch size it can reach is checked here too.

  Raises:
    ConfigError: one line naming the bad value, before any data is loaded.
  """
  config = shorten.apply(config)
  n = checks.integer('num_train_examples', num_train_examples, 1)
  devices = checks.integer('num_devices', num_devices, 1)
  num_epochs = checks.integer('num_epochs', config.num_epochs, 1)
  max_pdb = checks.integer('max_per_device_batch', config.max_per_device_batch, 0)
  ghost = checks.integer('ghost_batch_size', config.ghost_batch_size, 0)
  momentum = momentum_of(config.optimizer)
  lr_schedule = build_lr_schedule(config.lr_schedule)
  batch_schedule = build_batch_schedule(config.batch_schedule, num_examples=n)
  checks.inside('batch_schedule.boundaries', batch_schedule.boundaries, num_epochs, 'epochs')
  if lr_schedule.clock == 'epoch':
    checks.inside('lr_schedule.boundaries', lr_schedule.boundaries, num_epochs, 'epochs')
  cap = batch_schedule.max_batch_size
  if cap is not None and cap > n:
    raise ConfigError(f'batch_schedule.max_batch_size {cap} is larger than the {n} training '
                      'examples')
  for b in batch_schedule.reachable:
    accumulation_split(b, devices, max_pdb, ghost, '(batch_schedule, reachable at run time)')
  try:
    steps = [batch_schedule.fn(e) for e in range(num_epochs)]
  except ConfigError as e:
    raise ConfigError(f'batch_schedule.{e}') from None
  ramp = []
  if batch_schedule.ramp:
    if batch_schedule.ramp(1.0) > n:
      raise ConfigError(f'batch_schedule.final_batch_size {batch_schedule.ramp(1.0)} is larger '
                        f'than the {n} training examples')
    ramp = _ramp_phases(batch_schedule.ramp, n, num_epochs, lambda b, where: accumulation_split(
        b, devices, max_pdb, ghost, where))
  plan = _plan_from_epochs([b for b, _ in steps], [k for _, k in steps], lr_schedule,
                           batch_schedule, n, devices, momentum, max_pdb, ghost, ramp)
  if lr_schedule.clock == 'update':
    checks.inside('lr_schedule.boundaries', lr_schedule.boundaries, plan.total_updates,
                  'updates')
  return plan
