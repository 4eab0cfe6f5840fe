"""The dynamic schedules, which act on a run between updates, behind one interface.

* reduce-on-plateau (``lr_schedule.name='reduce_on_plateau'``): at an evaluation, cuts the
  LR multiplier when the watched metric plateaus;
* manual (``lr_schedule.name='manual'``): sets the LR at the scripted ``changes``; any
  run takes a request (``python -m lr_study.training.manual_lr``) exactly once: it
  records the update it takes it at in the request, keeps its id in the checkpointed
  state, and a run resumed from before that update applies it again at that update;
* increase-on-plateau and noise-adaptive (``lr_study.schedules.batch_dynamic``): at an
  evaluation, raise the batch size from the next epoch and re-plan the remaining epochs.

:class:`DynamicSchedules` holds all three. The loop calls
:meth:`~DynamicSchedules.on_epoch_start`, :meth:`~DynamicSchedules.poll` (whenever it draws
progress) and :meth:`~DynamicSchedules.on_eval`; each returns the events to log in
``schedule_events.jsonl``, and afterwards ``lr_multiplier`` and ``plan`` are what the next
update uses. ``state_dict`` is
checkpointed with the train state, so a resumed run continues with the same multiplier,
plan and plateau counters. The step multiplies the planned LR by ``lr_multiplier``
(``lr_study.schedules.clock.learning_rate``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from lr_study.plan import TrainingPlan
from lr_study.schedules import batch_dynamic, plateau_controller
from lr_study.schedules.plateau import PlateauDetector
from lr_study.training.manual_lr import Request

Event = dict[str, Any]
RequestReader = Callable[[], Request | None]  # the pending manual LR request, or None
RequestMarker = Callable[[Request, int], Request]  # records the update a request applies from


class DynamicSchedules:
  """The run-time state of a run's dynamic schedules."""

  def __init__(self, plan: TrainingPlan, read_request: RequestReader,
               mark_taken: RequestMarker):
    self.plan = plan
    self.lr_multiplier = 1.0
    self.applied_request: str | None = None  # the id of the last manual request applied
    self.pending_request_at: int | None = None  # a taken request's update, not reached yet
    self._read_request, self._mark_taken = read_request, mark_taken
    self._lr = plan.lr_schedule
    self._lr_plateau = (plateau_controller(self._lr) if self._lr.dynamic == 'reduce_on_plateau'
                        else None)
    self._batch = plan.batch_schedule
    self._batch_plateau = (PlateauDetector.from_params(self._batch.params)
                           if self._batch.dynamic == 'increase_on_plateau' else None)
    self._batch_changes: list[tuple[int, int]] = []  # (from epoch, batch size)

  def on_epoch_start(self, update: int, epoch: int, resumed: bool = False) -> list[Event]:
    """A scripted manual change due at ``epoch`` (not again when a run resumes inside
    it), then any request."""
    events = []
    for at_epoch, learning_rate in self._lr.params.get('changes', ()):
      if at_epoch == epoch and not resumed:
        events.append(self._set_lr(update, learning_rate, 'scripted'))
    return events + self.poll(update)

  def poll(self, update: int) -> list[Event]:
    """A manual LR request, if a new one waits: it applies from the next update, or from
    the update it was taken at (by a run that stopped before its next checkpoint)."""
    pending, self.pending_request_at = self._read_request(), None
    if pending is None or pending.id == self.applied_request:
      return []
    if pending.taken_at_update is None:
      pending = self._mark_taken(pending, update)
    if pending.taken_at_update > update:
      self.pending_request_at = pending.taken_at_update
      return []
    self.applied_request = pending.id
    return [self._set_lr(update, pending.learning_rate, 'manual')]

  def _set_lr(self, update: int, learning_rate: float, reason: str) -> Event:
    """η = ``learning_rate`` now; the schedule's later changes scale with it."""
    scheduled = self.plan.lr_at_update(update)
    old = scheduled * self.lr_multiplier
    self.lr_multiplier = learning_rate / scheduled
    if self._lr_plateau is not None:
      self._lr_plateau.multiplier = self.lr_multiplier
    return {'update': update, 'epoch': self.plan.epoch_at_update(update),
            'kind': 'learning_rate', 'reason': reason, 'old_learning_rate': old,
            'learning_rate': learning_rate, 'multiplier': self.lr_multiplier}

  def on_eval(self, metrics: dict[str, float], update: int, epoch: int) -> list[Event]:
    """The plateau rules read the evaluation after ``epoch`` whole epochs."""
    events = []
    if self._lr_plateau is not None and self._lr_plateau.update(
        metrics[self._lr.params['metric']], self._lr.init_value):
      self.lr_multiplier = self._lr_plateau.multiplier
      events.append({'update': update, 'epoch': epoch, 'kind': 'learning_rate',
                     'reason': 'reduce_on_plateau', 'multiplier': self.lr_multiplier})
    if self._batch.dynamic and epoch < self.plan.num_epochs:
      batch_size = self.plan.batch_size_at_epoch(epoch)
      new = self._next_batch_size(metrics, batch_size)
      if new != batch_size:
        self._batch_changes.append((epoch, new))
        self.plan = self.plan.with_batch_size_from(epoch, new)
        events.append({'update': update, 'epoch': epoch, 'kind': 'batch_size',
                       'reason': self._batch.dynamic, 'batch_size': new,
                       'gradient_noise_scale': metrics.get('gradient_noise_scale')})
    return events

  def _next_batch_size(self, metrics: dict[str, float], batch_size: int) -> int:
    if self._batch.dynamic == 'noise_adaptive':
      return batch_dynamic.next_for_noise(self._batch, batch_size,
                                          metrics.get('gradient_noise_scale', math.nan))
    if self._batch_plateau.update(metrics[self._batch.params['metric']]):
      return batch_dynamic.next_on_plateau(self._batch, batch_size)
    return batch_size

  def state_dict(self) -> dict[str, Any]:
    return {'lr_multiplier': self.lr_multiplier, 'batch_changes': self._batch_changes,
            'applied_request': self.applied_request,
            'lr_plateau': self._lr_plateau.state_dict() if self._lr_plateau else None,
            'batch_plateau': self._batch_plateau.state_dict() if self._batch_plateau else None}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.lr_multiplier, self.applied_request = state['lr_multiplier'], state['applied_request']
    for epoch, batch_size in state['batch_changes']:
      self._batch_changes.append((epoch, batch_size))
      self.plan = self.plan.with_batch_size_from(epoch, batch_size)
    if self._lr_plateau is not None:
      self._lr_plateau.load_state_dict(state['lr_plateau'])
    if self._batch_plateau is not None:
      self._batch_plateau.load_state_dict(state['batch_plateau'])
