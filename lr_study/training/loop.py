"""The training loop: one run, from its plan to its summary, read top to bottom.

``train_and_evaluate`` walks the plan epoch by epoch. Per epoch the feed hands the step
its data (in memory: the training split with the epoch's order, made on the devices);
the loop dispatches the epoch's updates in chunks of up to ``updates_per_dispatch``,
each one call of the compiled step, cut so that a chunk ends at every multiple of
``train_log_every_updates``. Between chunks it does only what is due, at named points:

* **train log**: at every multiple of ``train_log_every_updates``;
* **progress**: every few seconds, when the dynamic schedules also read a manual LR
  request (on several processes, requests are read at epoch starts only, the points every
  process reaches together);
* **evaluation**: every ``eval_every_epochs`` epochs and at the end; every
  ``gradient_noise_every_epochs`` epochs and at the end with the gradient noise scale
  measured at the parameters of that moment (``gradient_noise.meter``); the plateau and
  noise-adaptive rules act on it (``lr_study.training.controllers``);
* **checkpoint**: every ``checkpoint_every_epochs`` epochs, and at the end.

Every change a dynamic schedule makes reaches the step as data (``StepInputs``). A run
whose loss or gradient turns non-finite stops at the next evaluation or progress line,
marked ``diverged`` at its first non-finite update.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator

import jax
import numpy as np

from lr_study.data.feeds import Feed
from lr_study.runtime import devices, hosts, metadata, run_files
from lr_study.runtime.preemption import Preempted, Preemption
from lr_study.runtime.progress import Progress
from lr_study.runtime.run_dir import RunDirectory
from lr_study.schedules import clock
from lr_study.schedules.noise_scale import noise_scale
from lr_study.training import gradient_noise, manual_lr
from lr_study.training.controllers import Controllers
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


@dataclasses.dataclass
class Loop:
  """The loop's own counters, checkpointed with the train state."""

  epoch: int = 0  # next epoch to run
  update: int = 0  # updates applied
  examples_seen: int = 0
  wall_time: float = 0.0  # training + evaluation seconds, summed over resumes
  train_log_mark: tuple[float, float, int] = (0.0, 0.0, 0)  # metric sums at the last train-log line
  log_lines: dict[str, int] | None = None  # records in each log at the checkpoint


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
  controllers = Controllers(setup.plan, *_manual_requests(files))
  host_state = init_train_state(setup.model, setup.tx, seed, setup.spec.image_shape)
  host_state, loop = _restore(files, config, host_state, controllers)
  if (finished := files.read_json(run_files.SUMMARY)) is not None:  # kept by _restore
    outcome = (f'diverged at update {finished["diverged_at_update"]}' if finished['status']
               == 'diverged' else f'test accuracy {finished["final_test_accuracy"]:.4f}')
    Progress(label, 0).close(f'{label}: {outcome} after {finished["updates"]} updates; it '
                             'ended earlier, its record stands')
    return finished
  files.open_logs(loop.update, loop.log_lines, {**config.to_dict(), 'seed': seed})
  files.write_json(run_files.METADATA, metadata.of_run(
      files.read_json(run_files.METADATA), config, controllers.plan, seed, sweep, loop.update))
  files.write_json(run_files.PLAN, controllers.plan.to_json())
  state, inputs = devices.replicate(host_state), _inputs(seed, controllers)
  evaluate, progress = evaluator(feed, setup.model), Progress(label, controllers.plan.examples_seen)
  measure = (gradient_noise.meter(feed, setup.model, config.gradient_noise_batch_size,
                                  config.gradient_noise_examples)
             if config.gradient_noise_batch_size else None)
  chunk_limit = min(config.updates_per_dispatch, max_in_flight() or config.updates_per_dispatch)
  started, diverged_at = time.monotonic() - loop.wall_time, 0
  while loop.epoch < controllers.plan.num_epochs and not diverged_at:
    plan, segments = controllers.plan, controllers.plan.epoch_segments(loop.epoch)
    resumed = loop.update > segments[0][1]  # inside the epoch
    if _log_events(files, controllers.on_epoch_start(loop.update, loop.epoch, resumed=resumed)):
      inputs = _inputs(seed, controllers)
    for phase, done in _left(segments, loop.update):
      dispatch = compiler.dispatcher(phase.per_device_batch, phase.accumulation_steps,
                                     feed.streaming)
      for args, updates in feed.epoch(seed, loop.epoch, phase.batch_size,
                                      phase.updates_per_epoch, done):
        for k in _chunks(loop.update, updates, config.train_log_every_updates, chunk_limit,
                         controllers.pending_at):
          state = dispatch(state, args, inputs, k)
          loop.update, loop.examples_seen = loop.update + k, loop.examples_seen + k * phase.batch_size
          if max_in_flight():
            jax.block_until_ready(state)
          if config.train_log_every_updates and loop.update % config.train_log_every_updates == 0:
            loop.train_log_mark = _write_train_log(files, state, loop.train_log_mark, loop.update, plan)
          if preemption.reached():
            _save(files, state, loop, controllers, started)
            raise Preempted(f'{label}: stopped by SIGTERM after update {loop.update}, checkpoint '
                            'saved; the same command resumes from it')
          if progress.due() or loop.update == controllers.pending_at:
            if jax.process_count() == 1 and _log_events(files, controllers.poll(loop.update)):
              inputs = _inputs(seed, controllers)
            loss, _, count = _sums(state)  # since the last evaluation
            progress.show(epoch=plan.epoch_at_update(loop.update), num_epochs=plan.num_epochs,
                          phase=plan.phases.index(phase), num_phases=len(plan.phases),
                          batch_size=phase.batch_size, learning_rate=_lr(state),
                          loss=loss / max(count, 1), examples_seen=loop.examples_seen)
    loop.epoch += 1
    diverged_at = int(state.diverged_at[0])
    last = loop.epoch == plan.num_epochs
    if loop.epoch % config.eval_every_epochs == 0 or last:
      noise_due = last or loop.epoch % config.gradient_noise_every_epochs == 0
      metrics = _evaluate(evaluate, measure if noise_due else None, state, loop, plan, config,
                          seed, started)
      files.log(run_files.METRICS, metrics)
      state, loop.train_log_mark = reset_metrics(state), (0.0, 0.0, 0)
      if _log_events(files, controllers.on_eval(metrics, loop.update, loop.epoch)):
        inputs, progress.total_examples = _inputs(seed, controllers), controllers.plan.examples_seen
        files.write_json(run_files.PLAN, controllers.plan.to_json())
    every = config.checkpoint_every_epochs
    if loop.epoch == segments[-1][0].end_epoch or (every and loop.epoch % every == 0):
      _save(files, state, loop, controllers, started)
  summary = _summary(config, files, seed, loop, controllers.plan, compiler, diverged_at)
  files.write_json(run_files.SUMMARY, summary)
  progress.close(f'{label}: ' + (f'diverged at update {diverged_at}' if diverged_at else
                                 f'test accuracy {summary["final_test_accuracy"]:.4f}')
                 + f' after {loop.update} updates, {loop.wall_time:.1f} s, '
                 f'{compiler.traces} train-step compile(s) so far')
  return summary


def _save(files: RunDirectory, state: Any, loop: Loop, controllers: Controllers,
          started: float) -> None:
  """A checkpoint of this update; then the manual request it holds is acknowledged."""
  loop.wall_time, loop.log_lines = time.monotonic() - started, files.lines()
  if not files.writer:
    return
  files.checkpoints.save(loop.update, devices.unreplicate(state), {
      'loop': dataclasses.asdict(loop), 'controllers': controllers.state_dict()})
  if controllers.applied_request:
    manual_lr.acknowledge(files.path, controllers.applied_request)


def _manual_requests(files: RunDirectory) -> tuple[Any, Any]:
  """The controllers' reader and marker of manual LR requests: process 0 reads and
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


def _restore(files: RunDirectory, config: Any, host_state: Any, controllers: Controllers
             ) -> tuple[Any, Loop]:
  """The checkpointed state and loop of ``files`` (process 0's, on every process), or the
  fresh ones; a ConfigError before any file changes where ``lr_study.runtime.resume`` refuses."""
  files.check_config(config)
  restored = files.checkpoints.restore(host_state) if files.writer else None
  saved = hosts.from_writer(restored.loop_state if restored else None)
  if saved is None:
    files.remove(run_files.SUMMARY)
    return host_state, Loop()
  loop = Loop(**saved['loop'])
  files.check_logs(loop.log_lines, loop.update)
  if restored and restored.skipped:
    print(f'{files.path}: {restored.skipped}', flush=True)
  ended = files.read_json(run_files.SUMMARY) or {}
  if ended.get('epochs') != controllers.plan.num_epochs or (
      ended.get('status') != 'diverged' and ended.get('updates') != loop.update):
    files.remove(run_files.SUMMARY)  # it trains on: extended, or its last checkpoint unusable
  controllers.load_state_dict(saved['controllers'])
  loop.train_log_mark = tuple(loop.train_log_mark)
  return hosts.arrays_from_writer(restored.state if restored else host_state), loop


def _inputs(seed: int, controllers: Controllers) -> StepInputs:
  """The step's data: the seed, the plan's phase table (padded to one shape whatever the
  re-planning: a re-planned run has at most one phase per epoch) and the dynamic LR
  multiplier."""
  plan = controllers.plan
  table = clock.PhaseTable.from_phases(plan.phases, max(plan.num_epochs, len(plan.phases)))
  return devices.replicate(StepInputs(
      seed=np.int32(seed), table=table.replace(lr_multiplier=table.lr_multiplier.astype(np.float32)),
      lr_multiplier=np.float32(controllers.lr_multiplier)))


def _left(segments: list[tuple[Any, int]], update: int) -> Iterator[tuple[Any, int]]:
  """The epoch's phases still to run after ``update`` updates, each with the updates of
  it already done (``> 0``: resumed inside it)."""
  for phase, first in segments:
    if update < first + phase.updates_per_epoch:
      yield phase, max(update - first, 0)


def _chunks(update: int, updates: int, log_every: int, limit: int, stop: int | None
            ) -> Iterator[int]:
  """Dispatch sizes for ``updates`` updates after ``update``: at most ``limit`` each, one
  ending at every multiple of ``log_every`` (0: none) and one at update ``stop``."""
  end = update + updates
  while update < end:
    k = min(limit, end - update)
    if log_every:
      k = min(k, log_every - update % log_every)
    if stop is not None and update < stop:
      k = min(k, stop - update)
    yield k
    update += k


def _sums(state: Any) -> tuple[float, float, int]:
  """(loss, accuracy, updates) summed since the last evaluation (a device read)."""
  m = state.metrics
  return float(m.loss[0]), float(m.accuracy[0]), int(m.updates[0])


def _lr(state: Any) -> float:
  """The LR of the last update applied (a device read)."""
  return float(state.opt_state.hyperparams['learning_rate'][0])


def _log_events(files: RunDirectory, events: list[dict[str, Any]]) -> bool:
  for event in events:
    files.log(run_files.EVENTS, event)
  return bool(events)


def _write_train_log(files: RunDirectory, state: Any, mark: tuple[float, float, int],
                     update: int, plan: Any) -> tuple[float, float, int]:
  sums = _sums(state)
  loss, accuracy, count = np.subtract(sums, mark)
  files.log(run_files.TRAIN_LOG, {'update': update, 'epoch': plan.epoch_at_update(update),
                                  'learning_rate': _lr(state), 'train_loss': loss / count,
                                  'train_accuracy': accuracy / count})
  return sums


def _evaluate(evaluate: Any, measure: gradient_noise.Meter | None, state: Any, loop: Loop,
              plan: Any, config: Any, seed: int, started: float) -> dict[str, Any]:
  """The metrics line of an evaluation after ``loop.epoch`` epochs: the gradient noise is
  measured over the order of the next epoch (``loop.epoch``)."""
  loss, accuracy, count = _sums(state)
  lr, batch_size = _lr(state), plan.batch_size_at_epoch(loop.epoch - 1)
  metrics = {'train_loss': loss / count, 'train_accuracy': accuracy / count, **evaluate(state),
             **(measure(state, seed, loop.epoch) if measure else {})}
  loop.wall_time = time.monotonic() - started
  return {'variant': config.get('variant', ''), 'seed': seed, 'update': loop.update,
          'epoch': float(loop.epoch), 'examples_seen': loop.examples_seen,
          'learning_rate': lr, 'batch_size': batch_size,
          'noise_scale': noise_scale(lr, batch_size, plan.num_train_examples, plan.momentum),
          'wall_time': loop.wall_time, **metrics}


def _summary(config: Any, files: RunDirectory, seed: int, loop: Loop, plan: Any,
             compiler: StepCompiler, diverged_at: int) -> dict[str, Any]:
  final = {} if diverged_at else files.last_metrics()
  return {'variant': config.get('variant', ''), 'seed': seed,
          'status': 'diverged' if diverged_at else 'finished',
          'diverged_at_update': diverged_at or None,
          'final_test_accuracy': final.get('test_accuracy'),
          'final_test_loss': final.get('test_loss'),
          'updates': loop.update, 'examples_seen': loop.examples_seen,
          'epochs': plan.num_epochs, 'wall_time': loop.wall_time,
          'planned_updates': plan.total_updates, 'compiles': compiler.traces}
