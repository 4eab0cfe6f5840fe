"""lr_study's loop as ``run_study`` runs it, with clocks that observe it without changing it.

The config is the schema's (one variant, constant B and LR, one evaluation after the last
epoch, no train log, no checkpoint); the runs share one ``InMemoryFeed`` and one
``StepCompiler``, one seed per round. The gradient noise measurement is the schema's, so
the step keeps each example's loss for it as in a study; it runs at the evaluation
after the last epoch, outside the timed epochs, and ``noise.py`` times it on its own.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator

import jax
import ml_collections

from benchmarks.throughput.options import Options
from lr_study import config as schema
from lr_study import study
from lr_study.data.feeds import InMemoryFeed
from lr_study.plan import Phase
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import RunSetup, prepare_run
from lr_study.training.step import StepCompiler

WIDTHS = (256, 256)
MOMENTUM = 0.9
XLA_COMPILES: list[tuple[str, float]] = []  # (function, seconds) of every backend compile


def _record_compile(event: str, duration: float, **kwargs: Any) -> None:
  if event == '/jax/core/compile/backend_compile_duration':
    XLA_COMPILES.append((str(kwargs.get('fun_name', '?')), duration))


jax.monitoring.register_event_duration_secs_listener(_record_compile)


class EpochClock:
  """The study's feed, noting when the loop asks for each epoch and reads the
  evaluation splits; every other attribute is the feed's."""

  def __init__(self, feed: InMemoryFeed):
    self.feed = feed
    self.starts: list[float] = []
    self.evaluations: list[float] = []

  def __getattr__(self, name: str) -> Any:
    return getattr(self.feed, name)

  @property
  def eval_splits(self) -> Any:
    self.evaluations.append(time.perf_counter())
    return self.feed.eval_splits

  def epoch(self, seed: int, epoch: int, phase: Phase, updates: int, done: int = 0
            ) -> Iterator[tuple[tuple[Any, ...], int]]:
    self.starts.append(time.perf_counter())
    yield from self.feed.epoch(seed, epoch, phase, updates, done)

  def epoch_seconds(self) -> list[float]:
    """Each epoch's time, start to next start; the last one ends at the evaluation. The
    loop reads ``state.diverged_at`` after every epoch, so the device work is inside."""
    ends = self.starts[1:] + self.evaluations[-1:]
    return [end - start for start, end in zip(self.starts, ends, strict=True)]


class FirstDispatchClock:
  """Wraps a compiler's dispatcher to note when a run's first dispatch has finished; only
  that dispatch is waited for."""

  def __init__(self, compiler: StepCompiler):
    self.first: tuple[int, float, int] | None = None  # (updates, time, XLA compiles so far)
    self._armed = False
    original = compiler.dispatcher

    def dispatcher(*args: Any, **kwargs: Any) -> Callable[..., Any]:
      dispatch = original(*args, **kwargs)

      def observed(state: Any, step_args: Any, inputs: Any, k: int) -> Any:
        out = dispatch(state, step_args, inputs, k)
        if self._armed:
          self._armed = False
          jax.block_until_ready(out)
          self.first = (k, time.perf_counter(), len(XLA_COMPILES))
        return out

      return observed

    compiler.dispatcher = dispatcher  # this instance only

  def arm(self) -> None:
    self.first, self._armed = None, True


def dataset_config(options: Options) -> ml_collections.ConfigDict:
  """The whole training split in memory (no validation split), prepared offline."""
  manual_dir = options.manual_dir if options.dataset == 'mnist' else ''
  return schema.dataset_defaults(options.dataset, data_dir=options.data_dir,
                                 manual_dir=manual_dir)


def run_setup(options: Options, batch_size: int, updates_per_dispatch: int | None = None,
              epochs: int | None = None) -> RunSetup:
  """The checked setup of a one-variant study's run, as ``run_study`` prepares it;
  ``updates_per_dispatch`` None keeps the schema's."""
  epochs = epochs or options.epochs
  config = schema.get_config()
  config.seeds = tuple(range(options.rounds))
  config.dataset = dataset_config(options)
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=WIDTHS, batch_norm=False,
                                                dropout=0.0))
  config.optimizer = ml_collections.ConfigDict(dict(name='momentum', momentum=MOMENTUM,
                                                    weight_decay=0.0))
  config.learning_rate = options.learning_rate
  config.batch_size = batch_size
  config.num_epochs = config.eval_every_epochs = config.gradient_noise_every_epochs = epochs
  config.checkpoint_every_epochs = config.train_log_every_updates = 0
  if updates_per_dispatch is not None:
    config.updates_per_dispatch = updates_per_dispatch
  config.variants = ml_collections.ConfigDict({'constant': {}})
  return prepare_run(study.resolve_variant(study.select_variant(config, None), 'constant'))


class LrStudyLoop:
  """One lr_study setup at one batch size, with one compiler for all its seeds."""

  def __init__(self, setup: RunSetup, workdir: str):
    self.setup, self.workdir = setup, workdir
    self.compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule,
                                 augment=setup.config.dataset.augment, mean=setup.spec.mean,
                                 std=setup.spec.std)
    self.first_dispatch = FirstDispatchClock(self.compiler)

  def run(self, feed: InMemoryFeed, seed: int) -> dict[str, Any]:
    """One seed's run: its epoch times, time to the first update and XLA compiles."""
    clock_feed = EpochClock(feed)
    self.first_dispatch.arm()
    compiles = len(XLA_COMPILES)
    start = time.perf_counter()
    summary = train_and_evaluate(self.setup, clock_feed,
                                 os.path.join(self.workdir, f'seed_{seed}'), seed,
                                 self.compiler,
                                 label=f'{os.path.basename(self.workdir)} seed {seed}')
    k, first, compiled = self.first_dispatch.first
    return {'epoch_seconds': clock_feed.epoch_seconds(), 'start': start,
            'time_to_first_update_s': first - start, 'first_dispatch_updates': k,
            'xla_compiles': len(XLA_COMPILES) - compiles,
            'xla_compiles_before_first_update': compiled - compiles,
            'final_test_accuracy': summary['final_test_accuracy'],
            'train_step_compiles_so_far': self.compiler.traces}
