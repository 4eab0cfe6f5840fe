"""An epoch as the loop runs it: a sequence of dispatches, each one call of the compiled step.

:func:`epoch_dispatches` yields an epoch's dispatches after the updates already done (a
run resumed inside the epoch): per phase of the epoch still to run, per item the feed
hands over (in memory, the epoch's order once; streaming, one batch), dispatches of at
most ``limit`` updates, cut so that one ends at every multiple of ``log_every`` (the train
log) and one at the update a manual LR request is taken at. The cuts never change what
the updates compute, only when the host may look between them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

from lr_study.data.feeds import Feed
from lr_study.plan import Phase, TrainingPlan
from lr_study.training.step import StepCompiler


@dataclasses.dataclass(frozen=True)
class Dispatch:
  """``updates`` updates of ``phase`` in one call: ``step(state, data, inputs, updates)``."""

  phase: Phase
  step: Callable[..., Any]  # the phase's compiled step (``StepCompiler.dispatcher``)
  data: tuple[Any, ...]  # the step's data from the feed
  updates: int


def phases_left(segments: list[tuple[Phase, int]], update: int) -> Iterator[tuple[Phase, int]]:
  """The epoch's phases (``TrainingPlan.epoch_segments``) still to run after ``update``
  updates, each with its updates already done (``> 0``: resumed inside it)."""
  for phase, first in segments:
    if update < first + phase.updates_per_epoch:
      yield phase, max(update - first, 0)


def dispatch_sizes(update: int, updates: int, log_every: int, limit: int, stop: int | None
                   ) -> Iterator[int]:
  """Dispatch sizes for ``updates`` updates after ``update``: at most ``limit`` each, one
  ending at every multiple of ``log_every`` (0: none) and one at update ``stop``."""
  end = update + updates
  while update < end:
    size = min(limit, end - update)
    if log_every:
      size = min(size, log_every - update % log_every)
    if stop is not None and update < stop:
      size = min(size, stop - update)
    yield size
    update += size


def epoch_dispatches(feed: Feed, compiler: StepCompiler, plan: TrainingPlan, seed: int,
                     epoch: int, update: int, log_every: int, limit: int,
                     stop_at: Callable[[], int | None]) -> Iterator[Dispatch]:
  """The dispatches of epoch ``epoch`` after update ``update``; ``stop_at()``, read at each
  item of the feed, is the update a dispatch must end at (None: none)."""
  for phase, done in phases_left(plan.epoch_segments(epoch), update):
    step = compiler.dispatcher(phase.per_device_batch, phase.accumulation_steps, feed.streaming)
    for data, updates in feed.epoch(seed, epoch, phase, phase.updates_per_epoch, done):
      for size in dispatch_sizes(update, updates, log_every, limit, stop_at()):
        yield Dispatch(phase, step, data, size)
        update += size
