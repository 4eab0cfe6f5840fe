"""The training loop: walks the training plan epoch by epoch through the pmap step.

Per epoch the host sends a few scalars (the epoch, its first update, its update count,
the LR multiplier) and the device computes the epoch's permutation; per update it only
dispatches the compiled step. Evaluation runs every ``eval_every_epochs`` epochs on the
whole test split (and the validation split, if carved). Dynamic schedules act there,
between updates: reduce-on-plateau scales the LR, increase-on-plateau re-plans the
remaining epochs with a larger batch, and a manual LR request takes effect at the next
update. Every change reaches the step as data.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from lr_study import checkpoint, devices, manual_lr, run_files
from lr_study.data.sources import DatasetSpec, dataset_spec
from lr_study.errors import ConfigError
from lr_study.models import build_model, ghost_size
from lr_study.noise_scale import noise_scale
from lr_study.optimizers import build_optimizer
from lr_study.plan import TrainingPlan, build_plan
from lr_study.progress import Progress
from lr_study.run_metadata import run_metadata
from lr_study.schedules import LRSchedule, plateau_controller
from lr_study.train_step import EpochContext, StepCompiler, init_train_state, reset_metrics
from lr_study.training_data import TrainingData


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
  _check_plateau_metrics(plan, plan.lr_schedule, config.dataset.validation_size)
  for phase in plan.phases:  # each micro-batch is split into whole ghost batches
    ghost_size(config.ghost_batch_size, phase.micro_batch_size)
  return RunSetup(config=config, spec=spec, plan=plan,
                  model=build_model(config.model, spec.num_classes, config.ghost_batch_size),
                  tx=build_optimizer(config.optimizer))


PLATEAU_METRICS = ('validation_loss', 'validation_accuracy', 'test_loss', 'test_accuracy',
                   'train_loss', 'train_accuracy')


def _check_plateau_metrics(plan: TrainingPlan, schedule: LRSchedule, validation_size: int) -> None:
  """The metric a plateau schedule watches must be one the loop measures."""
  watched = {'lr_schedule': schedule.params if schedule.dynamic == 'reduce_on_plateau' else None,
             'batch_schedule': plan.batch_schedule.params if plan.batch_schedule.dynamic else None}
  for owner, params in watched.items():
    if params is None:
      continue
    metric = params.get('metric')
    if metric not in PLATEAU_METRICS:
      raise ConfigError(f'{owner}.metric: unknown metric {metric!r} '
                        f'(known: {", ".join(PLATEAU_METRICS)})')
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

  def on_manual(self, learning_rate: float) -> None:
    self.multiplier = learning_rate / self.schedule.init_value
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


def _context(perm: np.ndarray, epoch: int, first_update: int, updates_per_epoch: int,
             lr_multiplier: float) -> EpochContext:
  return devices.replicate(EpochContext(
      perm=perm, epoch=np.int32(epoch), first_update=np.int32(first_update),
      updates_per_epoch=np.int32(updates_per_epoch), lr_multiplier=np.float32(lr_multiplier)))


def train_and_evaluate(setup: RunSetup, data: TrainingData, run_dir: str, seed: int,
                       compiler: StepCompiler, label: str = '') -> dict[str, Any]:
  """Trains one run to the end of its plan (resuming from ``run_dir`` if it holds a
  checkpoint) and returns its summary, also written to ``run_dir/summary.json``."""
  config, plan = setup.config, setup.plan
  os.makedirs(run_dir, exist_ok=True)
  lr_control, batch_control = LRControl(plan.lr_schedule), BatchControl(plan)
  loop = Loop()
  host_state = init_train_state(setup.model, setup.tx, seed, setup.spec.image_shape)
  restored = checkpoint.restore(run_dir, host_state)
  if restored:
    host_state, saved = restored
    loop = Loop(**saved['loop'])
    lr_control.load_state_dict(saved['lr_control'])
    batch_control.load_state_dict(saved['batch_control'])
    plan = batch_control.replan(plan)
    for name in (run_files.METRICS, run_files.TRAIN_LOG, run_files.EVENTS):
      run_files.truncate_jsonl(os.path.join(run_dir, name), lambda r: r['update'] <= loop.update)
  run_files.write_json(os.path.join(run_dir, run_files.METADATA),
                       run_metadata(config, plan, seed))
  run_files.write_json(os.path.join(run_dir, run_files.PLAN), plan.to_json())
  metrics_log = run_files.JsonlWriter(os.path.join(run_dir, run_files.METRICS))
  train_log = run_files.JsonlWriter(os.path.join(run_dir, run_files.TRAIN_LOG))
  events = run_files.JsonlWriter(os.path.join(run_dir, run_files.EVENTS))
  state = devices.replicate(host_state)
  evaluate = data.evaluator(setup.model)
  progress = Progress(label or run_dir, plan.examples_seen)
  log_every = config.train_log_every_updates
  train_log_mark = (0.0, 0.0, 0)  # metric sums at the last train-log line
  started = time.monotonic() - loop.wall_time

  def read_sums() -> tuple[float, float, int]:
    m = state.metrics
    return float(m.loss[0]), float(m.accuracy[0]), int(m.updates[0])

  while loop.epoch < plan.num_epochs:
    epoch = loop.epoch
    phase_index, phase = plan.phase_index_at_epoch(epoch), plan.phase_at_epoch(epoch)
    base_multiplier = plan.lr_multiplier_at_epoch(epoch)
    request = manual_lr.take_request(run_dir)
    if request is not None:
      _log_lr_change(events, loop, setup, plan, lr_control, request, 'manual')
    ctx = _context(data.permutation(seed, epoch), epoch, loop.update, phase.updates_per_epoch,
                   base_multiplier * lr_control.multiplier)
    step = compiler.train_step(phase.per_device_batch, phase.accumulation_steps, data.streaming)
    for inputs in data.epoch_inputs(seed, epoch, phase.batch_size, phase.updates_per_epoch):
      state = step(state, *inputs, ctx)
      loop.update += 1
      loop.examples_seen += phase.batch_size
      if log_every and loop.update % log_every == 0:
        sums = read_sums()
        d = [a - b for a, b in zip(sums, train_log_mark)]
        train_log.write({'update': loop.update, 'epoch': plan.epoch_at_update(loop.update),
                         'learning_rate': float(state.opt_state.hyperparams['learning_rate'][0]),
                         'train_loss': d[0] / d[2], 'train_accuracy': d[1] / d[2]})
        train_log_mark = sums
      if progress.due():
        request = manual_lr.take_request(run_dir)
        if request is not None:
          _log_lr_change(events, loop, setup, plan, lr_control, request, 'manual')
          ctx = ctx.replace(lr_multiplier=devices.replicate(
              np.float32(base_multiplier * lr_control.multiplier)))
        progress.show(epoch=plan.epoch_at_update(loop.update), num_epochs=plan.num_epochs,
                      phase=phase_index, num_phases=len(plan.phases), batch_size=phase.batch_size,
                      learning_rate=float(state.opt_state.hyperparams['learning_rate'][0]),
                      loss=lambda: read_sums()[0] / max(read_sums()[2], 1),
                      examples_seen=loop.examples_seen)
    loop.epoch += 1
    last = loop.epoch == plan.num_epochs
    if loop.epoch % config.eval_every_epochs and not last:
      continue
    sums = read_sums()
    metrics = {'train_loss': sums[0] / sums[2], 'train_accuracy': sums[1] / sums[2],
               **evaluate(state)}
    state = reset_metrics(state)
    train_log_mark = (0.0, 0.0, 0)
    lr = float(state.opt_state.hyperparams['learning_rate'][0])
    loop.wall_time = time.monotonic() - started
    metrics_log.write({
        'update': loop.update, 'epoch': float(loop.epoch), 'examples_seen': loop.examples_seen,
        'learning_rate': lr, 'batch_size': phase.batch_size,
        'noise_scale': noise_scale(lr, phase.batch_size, plan.num_train_examples, plan.momentum),
        'wall_time': loop.wall_time, **metrics})
    if lr_control.on_eval(metrics):
      events.write({'update': loop.update, 'epoch': loop.epoch, 'kind': 'learning_rate',
                    'reason': 'reduce_on_plateau', 'multiplier': lr_control.multiplier})
    new_batch = batch_control.on_eval(metrics, loop.epoch, phase.batch_size, plan)
    if new_batch is not None:
      plan = plan.with_batch_size_from(loop.epoch, new_batch)
      run_files.write_json(os.path.join(run_dir, run_files.PLAN), plan.to_json())
      events.write({'update': loop.update, 'epoch': loop.epoch, 'kind': 'batch_size',
                    'reason': 'increase_on_plateau', 'batch_size': new_batch})
      progress.total_examples = plan.examples_seen
    if config.checkpoint_every_epochs and (loop.epoch % config.checkpoint_every_epochs == 0
                                           or last):
      checkpoint.save(run_dir, devices.unreplicate(state), {
          'loop': dataclasses.asdict(loop), 'lr_control': lr_control.state_dict(),
          'batch_control': batch_control.state_dict()})
  for log in (metrics_log, train_log, events):
    log.close()
  final = run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))[-1]
  summary = {'variant': config.get('variant', ''), 'seed': seed,
             'final_test_accuracy': final['test_accuracy'], 'final_test_loss': final['test_loss'],
             'updates': loop.update, 'examples_seen': loop.examples_seen,
             'epochs': plan.num_epochs, 'wall_time': loop.wall_time,
             'planned_updates': plan.total_updates, 'compiles': compiler.traces}
  run_files.write_json(os.path.join(run_dir, run_files.SUMMARY), summary)
  progress.close(f'{label or run_dir}: test accuracy {final["test_accuracy"]:.4f} after '
                 f'{loop.update} updates, {loop.wall_time:.1f} s')
  return summary


def _log_lr_change(events: run_files.JsonlWriter, loop: Loop, setup: RunSetup, plan: TrainingPlan,
                   lr_control: LRControl, learning_rate: float, reason: str) -> None:
  old = plan.lr_at_update(loop.update) * lr_control.multiplier
  lr_control.on_manual(learning_rate)
  events.write({'update': loop.update, 'epoch': plan.epoch_at_update(loop.update),
                'kind': 'learning_rate', 'reason': reason, 'old_learning_rate': old,
                'learning_rate': learning_rate, 'multiplier': lr_control.multiplier})
