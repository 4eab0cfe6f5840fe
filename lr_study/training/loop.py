"""The training loop: walks the training plan epoch by epoch through the pmap step.

Per epoch the host sends a few scalars (the epoch, its first update, its update count,
the LR multiplier) and the device computes the epoch's permutation; per update it only
dispatches the compiled step. Evaluation runs every ``eval_every_epochs`` epochs on the
whole test split (and the validation split, if carved). Dynamic schedules act there,
between updates: reduce-on-plateau scales the LR, increase-on-plateau re-plans the
remaining epochs with a larger batch, and a manual LR request takes effect at the next
update. Every change reaches the step as data.

On several processes (``lr_study.runtime.hosts``) process 0 writes the run directory, and what it
reads there (the checkpoint to resume, a manual LR request, the last metrics) is
broadcast to the others; manual requests are then taken at epoch starts only, the points
every process reaches together.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from lr_study.training import checkpoint
from lr_study.runtime import devices
from lr_study.runtime import hosts
from lr_study.training import manual_lr
from lr_study.runtime import run_files
from lr_study.data.sources import DatasetSpec, dataset_spec
from lr_study.errors import ConfigError
from lr_study.models import build_model, ghost_size
from lr_study.schedules.noise_scale import noise_scale
from lr_study.training.optimizers import build_optimizer
from lr_study.plan import TrainingPlan, build_plan
from lr_study.runtime.progress import Progress
from lr_study.runtime.metadata import run_metadata
from lr_study.schedules import LRSchedule, plateau_controller
from lr_study.training.step import (EpochContext, StepCompiler, epoch_context, init_train_state,
                                 reset_metrics)
from lr_study.data.feeds import TrainingData


@dataclasses.dataclass
class RunSetup:
  """Everything built and validated from a run's config before any data is loaded."""

  config: ml_collections.ConfigDict
  spec: DatasetSpec
  plan: TrainingPlan
  model: Any
  tx: Any


def prepare_run(config: ml_collections.ConfigDict) -> RunSetup:
  """Builds the plan, schedules, model and optimizer; ConfigError on any bad value."""
  spec = dataset_spec(config.dataset)
  plan = build_plan(config, num_devices=jax.device_count(),
                    num_train_examples=spec.num_train_examples)
  if config.eval_every_epochs < 1:
    raise ConfigError(f'eval_every_epochs must be >= 1, got {config.eval_every_epochs}')
  _check_plateau_metrics(plan, config.dataset.validation_size)
  for phase in plan.phases:  # each micro-batch is split into whole ghost batches
    ghost_size(config.ghost_batch_size, phase.micro_batch_size)
  return RunSetup(config=config, spec=spec, plan=plan,
                  model=build_model(config.model, spec.num_classes, config.ghost_batch_size),
                  tx=build_optimizer(config.optimizer))


def _check_plateau_metrics(plan: TrainingPlan, validation_size: int) -> None:
  """A plateau rule that watches a validation metric needs a validation split."""
  schedules = {'lr_schedule': plan.lr_schedule, 'batch_schedule': plan.batch_schedule}
  for owner, schedule in schedules.items():
    metric = schedule.params.get('metric', '') if schedule.dynamic else ''
    if metric.startswith('validation') and not validation_size:
      raise ConfigError(f'{owner}.metric {metric!r} needs dataset.validation_size > 0')


class LRControl:
  """The host-side LR multiplier of the dynamic schedules (plateau and manual)."""

  def __init__(self, schedule: LRSchedule):
    self.schedule = schedule
    self.multiplier = 1.0
    self.plateau = (plateau_controller(schedule) if schedule.dynamic == 'reduce_on_plateau'
                    else None)

  def on_eval(self, metrics: dict[str, float]) -> bool:
    if self.plateau is None:
      return False
    changed = self.plateau.update(metrics[self.schedule.params['metric']],
                                  self.schedule.init_value)
    self.multiplier = self.plateau.multiplier
    return changed

  def on_manual(self, learning_rate: float, scheduled: float) -> None:
    """From now on η = ``learning_rate`` · schedule(t)/``scheduled``: the requested LR
    at once, the schedule's later changes kept (for ``manual``, a constant, exactly it)."""
    self.multiplier = learning_rate / scheduled
    if self.plateau is not None:
      self.plateau.multiplier = self.multiplier

  def state_dict(self) -> dict[str, Any]:
    return {'multiplier': self.multiplier,
            'plateau': self.plateau.state_dict() if self.plateau else None}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.multiplier = state['multiplier']
    if self.plateau is not None:
      self.plateau.load_state_dict(state['plateau'])


class BatchControl:
  """Increase-on-plateau: the plan's batch schedule says when (its detector) and to what."""

  def __init__(self, plan: TrainingPlan):
    self.schedule = plan.batch_schedule
    self.detector = self.schedule.plateau_detector() if self.schedule.dynamic else None
    self.changes: list[tuple[int, int]] = []  # (from epoch, batch size)

  def on_eval(self, metrics: dict[str, float], epoch: int, batch_size: int,
              plan: TrainingPlan) -> int | None:
    """The new batch size from ``epoch`` on, or None."""
    if self.detector is None or epoch >= plan.num_epochs:
      return None
    if not self.detector.update(metrics[self.schedule.params['metric']]):
      return None
    new = self.schedule.next_batch_size(batch_size)
    if new == batch_size:
      return None
    self.changes.append((epoch, new))
    return new

  def replan(self, plan: TrainingPlan) -> TrainingPlan:
    for epoch, batch_size in self.changes:
      plan = plan.with_batch_size_from(epoch, batch_size)
    return plan

  def state_dict(self) -> dict[str, Any]:
    return {'changes': self.changes,
            'detector': self.detector.state_dict() if self.detector else None}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.changes = [tuple(c) for c in state['changes']]
    if self.detector is not None:
      self.detector.load_state_dict(state['detector'])


@dataclasses.dataclass
class Loop:
  """The mutable bookkeeping of one run, checkpointed with the train state."""

  epoch: int = 0  # next epoch to run
  update: int = 0  # updates applied
  examples_seen: int = 0
  wall_time: float = 0.0  # training + evaluation seconds, summed over resumes


# XLA:CPU can deadlock in the all-reduce of a pmapped step (and abort after 40 s) when
# about 50 or more such steps are queued on several CPU devices (seen with jax 0.10.2 and
# 8 fake devices, also for a plain pmap(pmean) chain). On that backend alone the loop
# waits for the state every MAX_IN_FLIGHT_CPU updates; GPUs and TPUs keep a free queue.
MAX_IN_FLIGHT_CPU = 16


def max_in_flight() -> int | None:
  """Updates the loop may queue before it waits for the state; None for no limit."""
  multi_cpu = jax.default_backend() == 'cpu' and jax.local_device_count() > 1
  return MAX_IN_FLIGHT_CPU if multi_cpu else None


class _Run:
  """One run's state, logs and controllers, and the steps of its loop."""

  def __init__(self, setup: RunSetup, data: TrainingData, run_dir: str, seed: int,
               compiler: StepCompiler, label: str):
    self.setup, self.data, self.run_dir, self.seed, self.compiler = (
        setup, data, run_dir, seed, compiler)
    self.config, self.plan = setup.config, setup.plan
    self.writer = hosts.is_writer()
    if self.writer:
      os.makedirs(run_dir, exist_ok=True)
    self.lr_control, self.batch_control = LRControl(self.plan.lr_schedule), BatchControl(self.plan)
    self.loop = Loop()
    host_state = init_train_state(setup.model, setup.tx, seed, setup.spec.image_shape)
    restored = checkpoint.restore(run_dir, host_state) if self.writer else None
    saved = hosts.from_writer(restored[1] if restored else None)
    if saved is not None:
      host_state = hosts.arrays_from_writer(restored[0] if restored else host_state)
      self.loop = Loop(**saved['loop'])
      self.lr_control.load_state_dict(saved['lr_control'])
      self.batch_control.load_state_dict(saved['batch_control'])
      self.plan = self.batch_control.replan(self.plan)
    if self.writer:
      for name in (run_files.METRICS, run_files.TRAIN_LOG, run_files.EVENTS):
        # Logs end where the checkpoint does (empty for a fresh start in an old directory).
        run_files.truncate_jsonl(self.path(name), lambda r: r['update'] <= self.loop.update)
    self.write_json(run_files.METADATA, run_metadata(self.config, self.plan, seed))
    self.write_json(run_files.PLAN, self.plan.to_json())
    self.metrics_log, self.train_log, self.events = (
        run_files.JsonlWriter(self.path(name) if self.writer else os.devnull)
        for name in (run_files.METRICS, run_files.TRAIN_LOG, run_files.EVENTS))
    self.state = devices.replicate(host_state)
    self.evaluate = data.evaluator(setup.model)
    self.label = label or run_dir
    self.progress = Progress(self.label, self.plan.examples_seen)
    self.train_log_mark = (0.0, 0.0, 0)  # metric sums at the last train-log line
    self.started = time.monotonic() - self.loop.wall_time

  def path(self, name: str) -> str:
    return os.path.join(self.run_dir, name)

  def write_json(self, name: str, obj: Any) -> None:
    """Writes ``run_dir/name`` atomically, on the writing process only."""
    if self.writer:
      run_files.write_json(self.path(name), obj)

  def metric_sums(self) -> tuple[float, float, int]:
    """(loss, accuracy, updates) summed since the last evaluation (a device read)."""
    m = self.state.metrics
    return float(m.loss[0]), float(m.accuracy[0]), int(m.updates[0])

  def learning_rate(self) -> float:
    """The LR of the last update applied (a device read)."""
    return float(self.state.opt_state.hyperparams['learning_rate'][0])

  def context(self, phase_multiplier: float) -> EpochContext:
    return epoch_context(self.data.permutation(self.seed, self.loop.epoch), self.loop.epoch,
                         self.loop.update, self.plan.phase_at_epoch(self.loop.epoch).updates_per_epoch,
                         phase_multiplier * self.lr_control.multiplier)

  def take_manual_request(self) -> bool:
    """Applies a manual LR request, if there is one, from the next update on."""
    learning_rate = hosts.from_writer(manual_lr.take_request(self.run_dir) if self.writer
                                      else None)
    if learning_rate is None:
      return False
    scheduled = self.plan.lr_at_update(self.loop.update)
    old = scheduled * self.lr_control.multiplier
    self.lr_control.on_manual(learning_rate, scheduled)
    self.events.write({'update': self.loop.update, 'epoch': self.plan.epoch_at_update(self.loop.update),
                       'kind': 'learning_rate', 'reason': 'manual', 'old_learning_rate': old,
                       'learning_rate': learning_rate, 'multiplier': self.lr_control.multiplier})
    return True

  def train_epoch(self) -> None:
    """Dispatches one epoch of updates; reads the devices only for logs and progress."""
    plan, loop = self.plan, self.loop
    phase_index, phase = plan.phase_index_at_epoch(loop.epoch), plan.phase_at_epoch(loop.epoch)
    phase_multiplier = plan.lr_multiplier_at_epoch(loop.epoch)
    self.take_manual_request()
    ctx = self.context(phase_multiplier)
    step = self.compiler.train_step(phase.per_device_batch, phase.accumulation_steps,
                                    self.data.streaming)
    log_every = self.config.train_log_every_updates
    in_flight = max_in_flight()
    for inputs in self.data.epoch_inputs(self.seed, loop.epoch, phase.batch_size,
                                         phase.updates_per_epoch):
      self.state = step(self.state, *inputs, ctx)
      loop.update += 1
      loop.examples_seen += phase.batch_size
      if in_flight and loop.update % in_flight == 0:
        jax.block_until_ready(self.state)
      if log_every and loop.update % log_every == 0:
        self.write_train_log()
      if self.progress.due():
        if jax.process_count() == 1 and self.take_manual_request():
          ctx = ctx.replace(lr_multiplier=devices.replicate(
              np.float32(phase_multiplier * self.lr_control.multiplier)))
        loss, _, count = self.metric_sums()
        self.progress.show(epoch=plan.epoch_at_update(loop.update), num_epochs=plan.num_epochs,
                           phase=phase_index, num_phases=len(plan.phases),
                           batch_size=phase.batch_size, learning_rate=self.learning_rate(),
                           loss=loss / max(count, 1), examples_seen=loop.examples_seen)
    loop.epoch += 1

  def write_train_log(self) -> None:
    sums = self.metric_sums()
    loss, accuracy, count = (a - b for a, b in zip(sums, self.train_log_mark))
    self.train_log.write({'update': self.loop.update,
                          'epoch': self.plan.epoch_at_update(self.loop.update),
                          'learning_rate': self.learning_rate(), 'train_loss': loss / count,
                          'train_accuracy': accuracy / count})
    self.train_log_mark = sums

  def evaluation_due(self) -> bool:
    return (self.loop.epoch % self.config.eval_every_epochs == 0
            or self.loop.epoch == self.plan.num_epochs)

  def evaluate_and_act(self) -> None:
    """Evaluates, logs, lets the dynamic schedules act, and checkpoints when due."""
    loop, plan = self.loop, self.plan
    loss, accuracy, count = self.metric_sums()
    metrics = {'train_loss': loss / count, 'train_accuracy': accuracy / count,
               **self.evaluate(self.state)}
    self.state = reset_metrics(self.state)
    self.train_log_mark = (0.0, 0.0, 0)
    batch_size = plan.batch_size_at_epoch(loop.epoch - 1)
    lr = self.learning_rate()
    loop.wall_time = time.monotonic() - self.started
    self.metrics_log.write({
        'update': loop.update, 'epoch': float(loop.epoch), 'examples_seen': loop.examples_seen,
        'learning_rate': lr, 'batch_size': batch_size,
        'noise_scale': noise_scale(lr, batch_size, plan.num_train_examples, plan.momentum),
        'wall_time': loop.wall_time, **metrics})
    if self.lr_control.on_eval(metrics):
      self.events.write({'update': loop.update, 'epoch': loop.epoch, 'kind': 'learning_rate',
                         'reason': 'reduce_on_plateau', 'multiplier': self.lr_control.multiplier})
    new_batch = self.batch_control.on_eval(metrics, loop.epoch, batch_size, plan)
    if new_batch is not None:
      self.plan = plan.with_batch_size_from(loop.epoch, new_batch)
      self.write_json(run_files.PLAN, self.plan.to_json())
      self.events.write({'update': loop.update, 'epoch': loop.epoch, 'kind': 'batch_size',
                         'reason': 'increase_on_plateau', 'batch_size': new_batch})
      self.progress.total_examples = self.plan.examples_seen
    every = self.config.checkpoint_every_epochs
    if self.writer and every and (loop.epoch % every == 0 or loop.epoch == self.plan.num_epochs):
      checkpoint.save(self.run_dir, devices.unreplicate(self.state), {
          'loop': dataclasses.asdict(loop), 'lr_control': self.lr_control.state_dict(),
          'batch_control': self.batch_control.state_dict()})

  def close(self) -> None:
    for log in (self.metrics_log, self.train_log, self.events):
      log.close()

  def summary(self) -> dict[str, Any]:
    final = hosts.from_writer(run_files.read_jsonl(self.path(run_files.METRICS))[-1]
                              if self.writer else None)
    return {'variant': self.config.get('variant', ''), 'seed': self.seed,
            'final_test_accuracy': final['test_accuracy'], 'final_test_loss': final['test_loss'],
            'updates': self.loop.update, 'examples_seen': self.loop.examples_seen,
            'epochs': self.plan.num_epochs, 'wall_time': self.loop.wall_time,
            'planned_updates': self.plan.total_updates, 'compiles': self.compiler.traces}


def train_and_evaluate(setup: RunSetup, data: TrainingData, run_dir: str, seed: int,
                       compiler: StepCompiler, label: str = '') -> dict[str, Any]:
  """Trains one run to the end of its plan (resuming from ``run_dir`` if it holds a
  checkpoint) and returns its summary, also written to ``run_dir/summary.json``."""
  run = _Run(setup, data, run_dir, seed, compiler, label)
  try:
    while run.loop.epoch < run.plan.num_epochs:
      run.train_epoch()
      if run.evaluation_due():
        run.evaluate_and_act()
  finally:
    run.close()
  summary = run.summary()
  run.write_json(run_files.SUMMARY, summary)
  run.progress.close(f'{run.label}: test accuracy {summary["final_test_accuracy"]:.4f} after '
                     f'{summary["updates"]} updates, {summary["wall_time"]:.1f} s, '
                     f'{summary["compiles"]} train-step compile(s)')
  return summary
