"""The training loop: one run, from its plan to its summary, read top to bottom.

``train_and_evaluate`` runs the plan epoch by epoch, each epoch as the dispatches of
``lr_study.training.dispatches`` (one call of the compiled step each: which updates, on
which data). The loop does only what is due, checked at two points with :func:`due`
(big_vision's ``itstime``):

after each dispatch (the dispatches end at every multiple of ``train_log_every_updates``)

* **train log**: every ``train_log_every_updates`` updates;
* **preemption**: after a SIGTERM (on several processes at one dispatch on all), a
  checkpoint, then :class:`~lr_study.runtime.preemption.Preempted`;
* **progress**: every few seconds, when the dynamic schedules also read a manual LR
  request (on several processes, requests are read at epoch starts only, the points every
  process reaches together);

after each epoch

* **evaluation**: every ``eval_every_epochs`` epochs and at the end; every
  ``gradient_noise_every_epochs`` epochs and at the end with the gradient noise scale
  measured at the parameters of that moment (``gradient_noise.meter``); the plateau and
  noise-adaptive rules act on it (``lr_study.training.controllers``);
* **checkpoint**: every ``checkpoint_every_epochs`` epochs, at the end of each phase, and
  at the end.

Every change a dynamic schedule makes reaches the step as data (``StepInputs``). A run
whose loss or gradient turns non-finite stops after the epoch it turned in, marked
``diverged`` at its first non-finite update.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator

import jax
import numpy as np

from lr_study.data.feeds import Feed
from lr_study.plan import Phase
from lr_study.runtime import devices, hosts, metadata, run_files
from lr_study.runtime.preemption import Preempted, Preemption
from lr_study.runtime.progress import Progress
from lr_study.runtime.run_dir import RunDirectory
from lr_study.schedules import clock
from lr_study.training import gradient_noise, loop_state, manual_lr, records
from lr_study.training.controllers import DynamicSchedules
from lr_study.training.dispatches import Dispatch, epoch_dispatches
from lr_study.training.loop_state import LoopCounters
from lr_study.training.evaluate import evaluator
from lr_study.training.setup import RunSetup
from lr_study.training.step import StepCompiler, StepInputs, init_train_state, reset_metrics

# XLA:CPU can deadlock in the all-reduce of a pmapped step (and abort after 40 s) when
# about 50 or more such steps are queued on several CPU devices (seen with jax 0.10.2 and
# 8 fake devices, also for a plain pmap(pmean) chain). On that backend alone the loop
# dispatches at most MAX_IN_FLIGHT_CPU updates at a time and waits for each dispatch;
# GPUs and TPUs keep a free queue.
MAX_IN_FLIGHT_CPU = 16


def max_in_flight() -> int | None:
  """Updates the loop may queue before it waits for the state; None for no limit."""
  multi_cpu = jax.default_backend() == 'cpu' and jax.local_device_count() > 1
  return MAX_IN_FLIGHT_CPU if multi_cpu else None


def due(count: int, every: int, also: bool = False) -> bool:
  """Whether an action taken every ``every`` counts (0: never) is due at ``count``, or
  ``also`` asks for it anyway."""
  return also or (every > 0 and count % every == 0)


def train_and_evaluate(setup: RunSetup, feed: Feed, run_dir: str, seed: int,
                       compiler: StepCompiler, label: str = '',
                       sweep: dict[str, Any] | None = None,
                       preemption: Preemption | None = None) -> dict[str, Any]:
  """Trains one run to the end of its plan (resuming from ``run_dir`` if it holds a
  checkpoint) and returns its summary, also written to ``run_dir/summary.json``.

  ``sweep`` (the sweep point of the run, if any) is recorded in its metadata. When
  ``preemption`` is reached (a SIGTERM; on several processes at one dispatch on all), the
  run saves a checkpoint after it and raises :class:`~lr_study.runtime.preemption.Preempted`.
  """
  with RunDirectory(run_dir, setup.config.checkpoints_to_keep) as files:
    return _train(setup, feed, files, seed, compiler, label or run_dir, sweep or {},
                  preemption or Preemption())


def _train(setup: RunSetup, feed: Feed, files: RunDirectory, seed: int,
           compiler: StepCompiler, label: str, sweep: dict[str, Any],
           preemption: Preemption) -> dict[str, Any]:
  config = setup.config
  schedules = DynamicSchedules(setup.plan, *_manual_requests(files))
  host_state, counters = loop_state.restore(files, config, schedules, init_train_state(
      setup.model, setup.tx, seed, setup.spec.image_shape, gradient_noise.memory_size(
          feed, config.gradient_noise_batch_size, config.gradient_noise_examples)))
  if (ended := files.read_json(run_files.SUMMARY)) is not None:  # kept by loop_state.restore
    Progress(label, 0).close(f'{label}: {records.outcome(ended)} after {ended["updates"]} '
                             'updates; it ended earlier, its record stands')
    return ended
  files.open_logs(counters.update, counters.log_lines, {**config.to_dict(), 'seed': seed})
  files.write_json(run_files.METADATA, metadata.of_run(
      files.read_json(run_files.METADATA), config, schedules.plan, seed, sweep, counters.update))
  files.write_json(run_files.PLAN, schedules.plan.to_json())
  run = _Run(setup, feed, files, seed, compiler, schedules, counters, host_state, label,
             preemption)
  while counters.epoch < schedules.plan.num_epochs and not run.diverged_at:
    for dispatch in run.start_epoch():
      run.apply(dispatch)
      run.after_dispatch(dispatch.phase)
    run.end_epoch()
  return run.finish()


class _Run:
  """A run between its restore and its summary: the train state on the devices, the
  step's inputs, and the loop's named actions."""

  def __init__(self, setup: RunSetup, feed: Feed, files: RunDirectory, seed: int,
               compiler: StepCompiler, schedules: DynamicSchedules, counters: LoopCounters,
               host_state: Any, label: str, preemption: Preemption):
    self.config, self.feed, self.files, self.seed = setup.config, feed, files, seed
    self.compiler, self.schedules, self.counters = compiler, schedules, counters
    self.label, self.preemption = label, preemption
    self.state, self.inputs = devices.replicate(host_state), _step_inputs(seed, schedules)
    self.evaluate = evaluator(feed, setup.model)
    self.measure_noise = (gradient_noise.meter(feed, setup.model,
                                               self.config.gradient_noise_batch_size,
                                               self.config.gradient_noise_examples)
                          if self.config.gradient_noise_batch_size else None)
    self.progress = Progress(label, schedules.plan.examples_seen)
    limit = max_in_flight()
    self.wait_each_dispatch = limit is not None
    self.dispatch_limit = min(self.config.updates_per_dispatch,
                              limit or self.config.updates_per_dispatch)
    self.started = time.monotonic() - counters.wall_time
    self.plan, self.phase_end, self.diverged_at = schedules.plan, 0, 0

  def start_epoch(self) -> Iterator[Dispatch]:
    """The epoch's scripted LR change and any manual request; then its dispatches."""
    c = self.counters
    self.plan = self.schedules.plan  # this epoch's, whatever an evaluation re-plans after it
    segments = self.plan.epoch_segments(c.epoch)
    self.phase_end = segments[-1][0].end_epoch
    resumed = c.update > segments[0][1]  # inside the epoch
    self._act_on(self.schedules.on_epoch_start(c.update, c.epoch, resumed=resumed))
    return epoch_dispatches(self.feed, self.compiler, self.plan, self.seed, c.epoch, c.update,
                            self.config.train_log_every_updates, self.dispatch_limit,
                            lambda: self.schedules.pending_request_at)

  def apply(self, dispatch: Dispatch) -> None:
    """The dispatch's updates; the host waits for them only where the queue is bounded."""
    self.state = dispatch.step(self.state, dispatch.data, self.inputs, dispatch.updates)
    self.counters.update += dispatch.updates
    self.counters.examples_seen += dispatch.updates * dispatch.phase.batch_size
    if self.wait_each_dispatch:
      jax.block_until_ready(self.state)

  def after_dispatch(self, phase: Phase) -> None:
    """The actions due after a dispatch: train log, preemption, progress."""
    c = self.counters
    if due(c.update, self.config.train_log_every_updates):
      line, c.sums_at_train_log = records.train_log_line(self.state, c.sums_at_train_log,
                                                         c.update, self.plan)
      self.files.log(run_files.TRAIN_LOG, line)
    if self.preemption.reached():
      self.save()
      raise Preempted(f'{self.label}: stopped by SIGTERM after update {c.update}, checkpoint '
                      'saved; the same command resumes from it')
    if self.progress.due() or c.update == self.schedules.pending_request_at:
      self._show_progress(phase)

  def end_epoch(self) -> None:
    """The actions due after an epoch: evaluation, checkpoint."""
    c = self.counters
    c.epoch += 1
    self.diverged_at = int(self.state.diverged_at[0])
    last = c.epoch == self.plan.num_epochs
    if due(c.epoch, self.config.eval_every_epochs, last):
      self._evaluate(noise=due(c.epoch, self.config.gradient_noise_every_epochs, last))
    if due(c.epoch, self.config.checkpoint_every_epochs, c.epoch == self.phase_end):
      self.save()

  def save(self) -> None:
    """A checkpoint of this update (``loop_state.save``)."""
    self.counters.wall_time = time.monotonic() - self.started
    loop_state.save(self.files, self.state, self.counters, self.schedules)

  def finish(self) -> dict[str, Any]:
    """The run's summary, written and returned; its last progress line."""
    c = self.counters
    final = {} if self.diverged_at else self.files.last_metrics()
    summary = records.summary(self.config, self.seed, c, self.schedules.plan,
                              self.compiler.traces, self.diverged_at, final)
    self.files.write_json(run_files.SUMMARY, summary)
    self.progress.close(f'{self.label}: {records.outcome(summary)} after {c.update} updates, '
                        f'{c.wall_time:.1f} s, {self.compiler.traces} train-step compile(s) '
                        'so far')
    return summary

  def _show_progress(self, phase: Phase) -> None:
    """A progress line; on one process, a manual LR request read first."""
    c, plan = self.counters, self.plan
    if jax.process_count() == 1:
      self._act_on(self.schedules.poll(c.update))
    loss, _, count = records.metric_sums(self.state)  # since the last evaluation
    self.progress.show(epoch=plan.epoch_at_update(c.update), num_epochs=plan.num_epochs,
                       phase=plan.phases.index(phase), num_phases=len(plan.phases),
                       batch_size=phase.batch_size,
                       learning_rate=records.learning_rate(self.state),
                       loss=loss / max(count, 1), examples_seen=c.examples_seen)

  def _evaluate(self, noise: bool) -> None:
    """The metrics line after ``counters.epoch`` epochs (the gradient noise measured over
    the next epoch's order, where ``noise``); the dynamic schedules act on it."""
    c = self.counters
    measured = {**self.evaluate(self.state), **(
        self.measure_noise(self.state, self.seed, c.epoch) if noise and self.measure_noise
        else {})}
    c.wall_time = time.monotonic() - self.started
    metrics = records.metrics_line(self.state, measured, self.config, self.seed, c, self.plan)
    self.files.log(run_files.METRICS, metrics)
    self.state, c.sums_at_train_log = reset_metrics(self.state), records.NO_SUMS
    if self._act_on(self.schedules.on_eval(metrics, c.update, c.epoch)):
      self.progress.total_examples = self.schedules.plan.examples_seen
      self.files.write_json(run_files.PLAN, self.schedules.plan.to_json())

  def _act_on(self, events: list[dict[str, Any]]) -> bool:
    """Logs the dynamic schedules' events; after any, the step's inputs follow them."""
    for event in events:
      self.files.log(run_files.EVENTS, event)
    if events:
      self.inputs = _step_inputs(self.seed, self.schedules)
    return bool(events)


def _step_inputs(seed: int, schedules: DynamicSchedules) -> StepInputs:
  """The step's data besides the state: the seed, the plan's phase table (padded to one
  shape whatever the re-planning: a re-planned run has at most one phase per epoch) and
  the dynamic LR multiplier."""
  plan = schedules.plan
  table = clock.PhaseTable.from_phases(plan.phases, max(plan.num_epochs, len(plan.phases)))
  return devices.replicate(StepInputs(
      seed=np.int32(seed), table=table.replace(lr_multiplier=table.lr_multiplier.astype(np.float32)),
      lr_multiplier=np.float32(schedules.lr_multiplier)))


def _manual_requests(files: RunDirectory) -> tuple[Any, Any]:
  """The dynamic schedules' reader and marker of manual LR requests: process 0 reads and
  writes the request file, every process gets what it read."""

  def read() -> manual_lr.Request | None:
    found = manual_lr.read_request(files.path) if files.writer else None
    shared = hosts.from_writer(dataclasses.asdict(found) if found else None)
    return manual_lr.Request(**shared) if shared else None

  def mark(request: manual_lr.Request, update: int) -> manual_lr.Request:
    if files.writer:
      return manual_lr.mark_taken(files.path, request, update)
    return dataclasses.replace(request, taken_at_update=update)

  return read, mark
