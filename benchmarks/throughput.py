r"""Whole-epoch training throughput: lr_study's loop against plain host-fed ``jax.jit`` loops.

    python -m benchmarks.throughput [--batch_sizes=64,128,1024] [--rounds=5] [--epochs=3] \
        [--manual_dir=../shared/data/mnist] [--data_dir=/tmp/lr_study_tfds] \
        [--out_dir=benchmarks/results]

(``make bench`` runs it with the defaults, then ``benchmarks.input_pipeline``.) One
process, real MNIST (the full 60,000 training images, prepared offline by TFDS from the
four official files in ``--manual_dir``), the MLP 784-256-256-10, SGD with momentum 0.9
at a constant LR, at each batch size B of ``--batch_sizes``; an epoch is ⌊N/B⌋ updates
over a fresh permutation, as in lr_study. The loops:

* ``lr_study``: the training loop exactly as a user runs it. A config built from the
  schema (``lr_study.config.get_config()``: one variant, constant B and LR, evaluation
  at the end only, no train log, no checkpoint), then what ``lr_study.runner.run_study``
  does for the seeds of a variant: ``prepare_run``, one ``InMemoryFeed`` for the study
  (``load_feed``'s), one ``StepCompiler`` for all the seeds, and ``train_and_evaluate``
  per seed (round ``r`` is seed ``r``). ``updates_per_dispatch`` is the schema's default.
* ``lr_study_k1``: the same with ``updates_per_dispatch=1``, so the gain of the fused
  dispatch shows.
* ``lr_study_no_noise``: the same loop with a step that skips the gradient noise
  measurement (``StepCompiler(..., measure=False)``).
* ``jax_jit_tfdata``: the host-fed loop of the Flax MNIST example
  (``examples/mnist/train.py``): ``tf.data.Dataset.from_tensor_slices`` of the split
  normalized once to float32 on the host, ``.shuffle(1024).batch(B,
  drop_remainder=True).prefetch(1)``, iterated with ``as_numpy_iterator()`` each epoch,
  each batch passed to a ``jax.jit`` train step (``flax.training.train_state.TrainState``,
  ``optax.sgd(lr, momentum=0.9)``, ``nn.Dense`` 784-256-256-10, softmax cross-entropy;
  loss and accuracy per step, read back at the end of the epoch). Each run builds its
  train state and optimizer anew, as the examples' ``create_train_state`` does; the
  optimizer is a static field of the state, so each run compiles the step again.
* ``jax_jit``: the same loop and step with the batches sliced from the same host arrays
  by a NumPy permutation per epoch (an epoch is then a true permutation, as in lr_study,
  where ``shuffle(1024)`` only shuffles within a window).
* ``jax_jit_device_batch``: the same loop and step on one fixed batch already on the
  device: no host slicing, no copy. No input pipeline can make the host-fed loop faster
  than this, so ``jax_jit_device_batch ÷ jax_jit`` bounds what a device-resident
  pipeline can gain on this step.

The headline is lr_study ÷ each host-fed baseline, and the targets (:data:`TARGETS`) are
evaluated against both: the Flax example's tf.data loop and the NumPy-sliced jit loop.
* ``torch_randperm`` and ``torch_dataloader``, when PyTorch is importable (it is not a
  dependency): the same net and optimizer with ``torch.randperm`` and tensor slicing, or
  ``DataLoader(TensorDataset, shuffle=True, drop_last=True)``.

**How an epoch is timed.** Every loop runs ``--rounds`` runs (taking turns, so that a
change in the machine's load hits all of them alike; lr_study runs between its two
target baselines, so that the loops of each target ratio run back to back:
:func:`round_order`) of ``--epochs`` epochs each, and
each epoch is timed from its start to the next one's on the host clock. For lr_study the
loop's own epoch boundaries are observed without changing what it runs: the feed handed
to ``train_and_evaluate`` is the study's ``InMemoryFeed`` behind a wrapper
(:class:`EpochClock`) that notes the time when the loop asks it for an epoch (before the
epoch's permutation is made), and the last epoch ends when the loop's evaluator reads the
feed's evaluation splits.
These host times enclose the device work because the loop reads ``state.diverged_at``
after every epoch (and the evaluation reads the results), so an epoch's updates have
finished before the next epoch starts; each run's evaluation and files lie outside the
timed epochs. The first epoch of every run is not timed (the first round's compiles,
and the observed first dispatch, below, fall in it); the headline is the **median
examples/s over the other epochs** of all rounds, ⌊N/B⌋·B examples each.

**Compile count and time to the first update.** ``compiles`` is
``StepCompiler.traces`` after all the rounds (seeds): one trace per step shape for every
seed. ``xla_compiles`` counts XLA backend compiles (jax's monitoring event), every jitted
or pmapped function included. In the benchmark's process the time to the first update
runs from the call of ``train_and_evaluate`` (data on the device) to the end of the
first dispatch, ``first_dispatch_updates`` updates (the observing compiler waits for
that one dispatch only); ``warm`` is the median over the later seeds, whose step is
compiled. Cold starts are timed in a fresh process per loop and batch size
(``--cold_start``): from starting ``python`` to the end of the first update, and from
the loop's start (data loaded) to it, with the XLA compiles before it.

**Step level.** The compiled steps alone, without the loops around them: lr_study's
step with ``K`` and with 1 update per call (with and without the noise measurement, so
that the fused dispatch's gain shows apart from it), its variants below, the host-fed
jit step (slicing the host arrays at a running position, as the loop does) and the same
jit step on a fixed device batch, each run for the same updates (``--noise_examples``
examples, whole dispatches) in ``--noise_blocks`` blocks that take turns; a ratio is the
median over blocks of the two variants' ratio in that block (``speed_vs_jax_jit``). Load
that changes between rounds moves these paired ratios far less than the loops' epochs.

**The gradient noise scale's cost.** lr_study's step measures B_simple every
``gradient_noise_every_updates`` updates (``lr_study.training.step``); on one device a
measurement adds the gradient of the batch's first half. The step without it is
``StepCompiler(..., measure=False)`` (the squared norm of the update's gradient stays,
as the divergence check reads it). A measurement never changes the update: one update
from the same state, measured, must give the same parameters as without the measurement
(``step_level.*.check``). The cost is timed two ways: at the step level (above), cost =
the median over blocks of ``(t_with − t_without) / t_with``; and in the loop, from the
epoch medians of ``lr_study`` and ``lr_study_no_noise``. Target: under 3% of the step.

Writes ``throughput.json`` and ``throughput.md`` to ``--out_dir``. The host load
(``os.getloadavg()``) is sampled before and after each batch size: the timings are only
as steady as the machine.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator, Sequence

from absl import app, flags
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lr_study import config as schema
from lr_study import study
from lr_study.data.feeds import InMemoryFeed
from lr_study.data.sources import DatasetArrays, load_dataset_arrays
from lr_study.data.specs import dataset_spec
from lr_study.errors import ConfigError
from lr_study.runtime import devices, run_files
from lr_study.runtime.metadata import git_commit, package_versions
from lr_study.runtime.quiet_tf import import_tensorflow
from lr_study.schedules import clock
from lr_study.training.loop import max_in_flight, train_and_evaluate
from lr_study.training.setup import RunSetup, prepare_run
from lr_study.training.step import StepCompiler, StepInputs, init_train_state

JSON_NAME, MARKDOWN_NAME = 'throughput.json', 'throughput.md'
WIDTHS = (256, 256)
MOMENTUM = 0.9
TARGETS = {64: 1.3, 1024: 1.15}  # lr_study ÷ each baseline, on 2 CPU cores
BASELINES = {'jax_jit_tfdata': "vs the Flax example's tf.data loop",
             'jax_jit': 'vs NumPy-sliced jit'}
NOISE_TARGET_PERCENT = 3.0
LR_STUDY_LOOPS = ('lr_study', 'lr_study_k1', 'lr_study_no_noise')
JIT_LOOPS = ('jax_jit_tfdata', 'jax_jit', 'jax_jit_device_batch')
TORCH_LOOPS = ('torch_randperm', 'torch_dataloader')
COLD_START_LOOPS = ('lr_study', 'jax_jit')
LOOP_TITLES = {
    'lr_study': 'lr_study loop (K = {k} updates per dispatch)',
    'lr_study_k1': 'lr_study loop, K = 1',
    'lr_study_no_noise': 'lr_study loop, step without the noise measurement',
    'jax_jit_tfdata': 'host-fed jax.jit loop fed by tf.data (the Flax MNIST example)',
    'jax_jit': 'host-fed jax.jit loop, NumPy slicing',
    'jax_jit_device_batch': 'the same jit step on a fixed on-device batch (bound)',
    'torch_randperm': 'PyTorch, randperm + slicing',
    'torch_dataloader': 'PyTorch, DataLoader',
}
# In the order a block runs them (then backwards): lr_study's step between the two it is
# compared with, its step without the measurement and the host-fed jit step.
STEP_VARIANTS = ('without', 'with', 'jax_jit', 'jax_jit_device_batch', 'with_k1', 'without_k1')

@dataclasses.dataclass
class Options:
  """The benchmark's settings; the flags of the same names set them."""

  dataset: str = 'mnist'
  data_dir: str = os.path.join('/tmp', 'lr_study_tfds')
  manual_dir: str = os.path.join('..', 'shared', 'data', 'mnist')
  batch_sizes: Sequence[int] = (64, 128, 1024)
  rounds: int = 7
  epochs: int = 3
  learning_rate: float = 0.05
  torch: bool = True
  cold_start: bool = True
  noise_blocks: int = 15
  noise_examples: int = 32768
  out_dir: str = os.path.join('benchmarks', 'results')
  argv: Sequence[str] = ()

  @classmethod
  def from_flags(cls, flag_values: flags.FlagValues, argv: Sequence[str] = ()) -> 'Options':
    """The settings of the parsed ``flag_values`` (see :func:`define_flags`)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(cls)
              if f.name != 'argv'}
    values['batch_sizes'] = tuple(int(b) for b in values['batch_sizes'])
    return cls(**values, argv=tuple(argv))

  def child_argv(self, loop: str, batch_size: int) -> list[str]:
    """The flags of a cold-start process for ``loop`` at ``batch_size``."""
    return [f'--first_update_of={loop}', f'--batch_sizes={batch_size}',
            f'--dataset={self.dataset}', f'--data_dir={self.data_dir}',
            f'--manual_dir={self.manual_dir}', f'--learning_rate={self.learning_rate}']


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The command line: one flag per field of :class:`Options`, with its default, and the
  internal ``--first_update_of`` of the cold-start processes."""
  d = Options()
  fv = {'flag_values': flag_values}
  flags.DEFINE_enum('dataset', d.dataset, ['mnist', 'digits'],
                    'mnist (the benchmark) or the embedded digits (a quick check).', **fv)
  flags.DEFINE_string('data_dir', d.data_dir,
                      'TFDS data_dir where the dataset is (or gets) prepared.', **fv)
  flags.DEFINE_string('manual_dir', d.manual_dir,
                      'The four official MNIST files, for offline preparation.', **fv)
  flags.DEFINE_list('batch_sizes', [str(b) for b in d.batch_sizes], 'Global batch sizes.',
                    **fv)
  flags.DEFINE_integer('rounds', d.rounds, 'Runs of each loop per batch size (lr_study: '
                       'seeds).', **fv)
  flags.DEFINE_integer('epochs', d.epochs, 'Epochs per run; the first of each run is not '
                       'timed.', **fv)
  flags.DEFINE_float('learning_rate', d.learning_rate, 'Constant LR of every loop.', **fv)
  flags.DEFINE_bool('torch', d.torch, 'Time the PyTorch loops when torch is importable.',
                    **fv)
  flags.DEFINE_bool('cold_start', d.cold_start, 'Time the first update in a fresh process per '
                    'loop and batch size.', **fv)
  flags.DEFINE_integer('noise_blocks', d.noise_blocks, 'Alternating blocks of the step-level '
                       'noise cost.', **fv)
  flags.DEFINE_integer('noise_examples', d.noise_examples, 'Examples per block of the '
                       'step-level noise cost (whole dispatches, at least one).', **fv)
  flags.DEFINE_string('out_dir', d.out_dir, 'Where throughput.json and throughput.md go.',
                      **fv)
  flags.DEFINE_enum('first_update_of', None, list(COLD_START_LOOPS),
                    'Internal: time one cold start of this loop and print it as JSON.',
                    **fv)


# ---------------------------------------------------------------------------------------
# Observation: XLA compiles, epoch boundaries, the first dispatch.

XLA_COMPILES: list[tuple[str, float]] = []  # (function, seconds) of every backend compile


def _record_compile(event: str, duration: float, **kwargs: Any) -> None:
  if event == '/jax/core/compile/backend_compile_duration':
    XLA_COMPILES.append((str(kwargs.get('fun_name', '?')), duration))


jax.monitoring.register_event_duration_secs_listener(_record_compile)


class EpochClock:
  """The study's feed, unchanged, noting when the loop starts each epoch and evaluates.

  ``starts[e]`` is when ``train_and_evaluate`` asked for epoch ``e`` (before the
  epoch's permutation is made); ``evaluations`` when the loop's evaluator
  (``lr_study.training.evaluate.evaluator``) read the evaluation splits. Every other
  attribute is the feed's.
  """

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

  def epoch(self, seed: int, epoch: int, batch_size: int, updates: int, done: int = 0
            ) -> Iterator[tuple[tuple[Any, ...], int]]:
    self.starts.append(time.perf_counter())
    yield from self.feed.epoch(seed, epoch, batch_size, updates, done)

  def epoch_seconds(self) -> list[float]:
    """Each epoch's time, start to next start; the last one's end is the evaluation."""
    ends = self.starts[1:] + self.evaluations[-1:]
    return [end - start for start, end in zip(self.starts, ends, strict=True)]


class FirstDispatchClock:
  """Wraps a compiler's dispatcher to note when a run's first dispatch has finished.

  Only the first dispatch after :meth:`arm` is waited for (``jax.block_until_ready``);
  every later one passes through untouched.
  """

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


# ---------------------------------------------------------------------------------------
# The lr_study loop, as run_study runs it.

def dataset_config(options: Options) -> ml_collections.ConfigDict:
  """The whole training split in memory (no validation split), prepared offline."""
  manual_dir = options.manual_dir if options.dataset == 'mnist' else ''
  return schema.dataset_defaults(options.dataset, data_dir=options.data_dir,
                                 manual_dir=manual_dir)


def study_config(options: Options, batch_size: int, updates_per_dispatch: int | None,
                 epochs: int | None = None) -> ml_collections.ConfigDict:
  """A one-variant study from the schema: constant B and LR, evaluation after the last
  epoch only, no train log, no checkpoint; ``updates_per_dispatch`` None keeps the
  schema's."""
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
  config.num_epochs = epochs
  config.eval_every_epochs = epochs
  config.checkpoint_every_epochs = 0
  config.train_log_every_updates = 0
  if updates_per_dispatch is not None:
    config.updates_per_dispatch = updates_per_dispatch
  config.variants = ml_collections.ConfigDict({'constant': {}})
  return study.select_variant(config, None)


def run_setup(options: Options, batch_size: int, updates_per_dispatch: int | None = None,
              epochs: int | None = None) -> RunSetup:
  """The checked setup of the study's one run config, as ``run_study`` prepares it."""
  config = study_config(options, batch_size, updates_per_dispatch, epochs)
  return prepare_run(study.resolve_variant(config, 'constant'))


def make_compiler(setup: RunSetup, measure: bool = True) -> StepCompiler:
  """The variant's compiler, built as ``run_study`` builds it (``measure=False``: without
  the gradient noise measurement)."""
  config = setup.config
  return StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule,
                      augment=config.dataset.augment, mean=setup.spec.mean, std=setup.spec.std,
                      gradient_noise_decay=config.gradient_noise_decay,
                      gradient_noise_every_updates=config.gradient_noise_every_updates,
                      measure=measure)


class LrStudyLoop:
  """One lr_study variant at one batch size: its setup and one compiler for all seeds."""

  def __init__(self, setup: RunSetup, compiler: StepCompiler, workdir: str):
    self.setup, self.compiler, self.workdir = setup, compiler, workdir
    self.first_dispatch = FirstDispatchClock(compiler)

  def run(self, feed: InMemoryFeed, seed: int) -> dict[str, Any]:
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
            'run_wall_time_s': summary['wall_time'],
            'final_test_accuracy': summary['final_test_accuracy'],
            'train_step_compiles_so_far': self.compiler.traces}


# ---------------------------------------------------------------------------------------
# The plain host-fed jax.jit loop (the Flax examples' style).

class DenseMLP(nn.Module):
  """784-256-256-10 with ReLU, as in the Flax examples."""

  widths: Sequence[int]
  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape((x.shape[0], -1))
    for width in self.widths:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


@functools.cache
def dense_mlp(num_classes: int) -> DenseMLP:
  """One module per class count: its ``apply`` is a static field of the train state, so
  later runs reuse the compiled step, as lr_study's later seeds do."""
  return DenseMLP(WIDTHS, num_classes)


@jax.jit
def jit_train_step(state: train_state.TrainState, images: jax.Array, labels: jax.Array
                   ) -> tuple[train_state.TrainState, jax.Array, jax.Array]:
  """One SGD update on a host-fed batch; returns the state, loss and accuracy."""

  def loss_fn(params):
    logits = state.apply_fn({'params': params}, images)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return state.apply_gradients(grads=grads), loss, accuracy


@dataclasses.dataclass
class HostData:
  """Train and test splits normalized once to float32 on the host, flat rows [N, H·W·C]."""

  images: np.ndarray
  labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray


def host_data(arrays: DatasetArrays) -> HostData:
  mean = np.asarray(arrays.spec.mean, np.float32)
  std = np.asarray(arrays.spec.std, np.float32)

  def normalize(images: np.ndarray) -> np.ndarray:
    x = (images.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.reshape(len(images), -1))

  return HostData(normalize(arrays.train.images), arrays.train.labels.astype(np.int32),
                  normalize(arrays.test.images), arrays.test.labels.astype(np.int32))


def tfdata_batches(data: HostData, batch_size: int, seed: int
                   ) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
  """The Flax MNIST example's input pipeline on the normalized host arrays: each call
  iterates one epoch of ``shuffle(1024).batch(B, drop_remainder=True).prefetch(1)``."""
  tf = import_tensorflow()
  dataset = (tf.data.Dataset.from_tensor_slices((data.images, data.labels))
             .shuffle(1024, seed=seed).batch(batch_size, drop_remainder=True).prefetch(1))
  return dataset.as_numpy_iterator


def numpy_batches(data: HostData, batch_size: int, seed: int
                  ) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
  """Each call: one epoch of batches sliced on the host by a fresh NumPy permutation."""
  rng_np = np.random.default_rng(seed)
  steps = len(data.labels) // batch_size

  def epoch() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    perms = rng_np.permutation(len(data.labels))[:steps * batch_size]
    for perm in perms.reshape((steps, batch_size)):
      yield data.images[perm, ...], data.labels[perm]

  return epoch


def device_batches(data: HostData, batch_size: int, seed: int
                   ) -> Callable[[], Iterator[tuple[jax.Array, jax.Array]]]:
  """Each call: one epoch of the same fixed batch, already on the device."""
  fixed = np.random.default_rng(seed).permutation(len(data.labels))[:batch_size]
  batch = jax.device_put((data.images[fixed], data.labels[fixed]))
  steps = len(data.labels) // batch_size
  return lambda: iter([batch] * steps)


JIT_BATCHES = {'jax_jit_tfdata': tfdata_batches, 'jax_jit': numpy_batches,
               'jax_jit_device_batch': device_batches}


def jax_jit_run(data: HostData, num_classes: int, batch_size: int, epochs: int,
                learning_rate: float, seed: int, loop: str = 'jax_jit') -> dict[str, Any]:
  """``epochs`` epochs of the host-fed jit loop ``loop``, its batches from
  :data:`JIT_BATCHES`; the run's first step is waited for."""
  start = time.perf_counter()
  compiles = len(XLA_COMPILES)
  model = dense_mlp(num_classes)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, data.images.shape[1])))['params']
  state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                        tx=optax.sgd(learning_rate, momentum=MOMENTUM))
  epoch_batches = JIT_BATCHES[loop](data, batch_size, seed)
  seconds, first = [], None
  for _ in range(epochs):
    epoch_start = time.perf_counter()
    losses, accuracies = [], []
    for batch in epoch_batches():
      state, loss, accuracy = jit_train_step(state, *batch)
      losses.append(loss)
      accuracies.append(accuracy)
      if first is None:
        jax.block_until_ready(state)
        first = (time.perf_counter(), len(XLA_COMPILES))
    np.mean(jax.device_get(losses)), np.mean(jax.device_get(accuracies))
    seconds.append(time.perf_counter() - epoch_start)
  logits = model.apply({'params': state.params}, data.test_images)
  return {'epoch_seconds': seconds, 'start': start, 'time_to_first_update_s': first[0] - start,
          'first_dispatch_updates': 1, 'xla_compiles': len(XLA_COMPILES) - compiles,
          'xla_compiles_before_first_update': first[1] - compiles,
          'final_test_accuracy': float(np.mean(np.argmax(logits, -1) == data.test_labels))}


# ---------------------------------------------------------------------------------------
# PyTorch, when importable.

def torch_module() -> Any:
  """``torch``, or None when it is not installed."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return torch


def torch_run(torch: Any, data: HostData, num_classes: int, batch_size: int, epochs: int,
              learning_rate: float, seed: int, dataloader: bool) -> dict[str, Any]:
  """``epochs`` epochs of the PyTorch loop (randperm + slicing, or a DataLoader)."""
  start = time.perf_counter()
  torch.manual_seed(seed)
  x, y = torch.from_numpy(data.images), torch.from_numpy(data.labels.astype(np.int64))
  layers, width_in = [], x.shape[1]
  for width in WIDTHS:
    layers += [torch.nn.Linear(width_in, width), torch.nn.ReLU()]
    width_in = width
  model = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, num_classes))
  optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=MOMENTUM)
  loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                       batch_size=batch_size, shuffle=True, drop_last=True)
  steps = len(y) // batch_size

  def batches() -> Iterator[tuple[Any, Any]]:
    if dataloader:
      yield from loader
      return
    perm = torch.randperm(len(y))
    for i in range(steps):
      idx = perm[i * batch_size:(i + 1) * batch_size]
      yield x[idx], y[idx]

  seconds, first = [], None
  for _ in range(epochs):
    epoch_start = time.perf_counter()
    total = torch.zeros(())
    for xb, yb in batches():
      optimizer.zero_grad(set_to_none=True)
      loss = torch.nn.functional.cross_entropy(model(xb), yb)
      loss.backward()
      optimizer.step()
      total += loss.detach()
      if first is None:
        first = time.perf_counter()
    float(total)
    seconds.append(time.perf_counter() - epoch_start)
  with torch.no_grad():
    predicted = model(torch.from_numpy(data.test_images)).argmax(-1).numpy()
  return {'epoch_seconds': seconds, 'start': start, 'time_to_first_update_s': first - start,
          'first_dispatch_updates': 1,
          'final_test_accuracy': float(np.mean(predicted == data.test_labels))}


# ---------------------------------------------------------------------------------------
# Step level: the compiled steps alone, in alternating blocks (the noise scale's cost).

def step_inputs(setup: RunSetup, seed: int) -> StepInputs:
  """The step's inputs as the loop makes them (constant LR: multiplier 1)."""
  plan = setup.plan
  return devices.replicate(StepInputs(
      seed=np.int32(seed), table=clock.PhaseTable.from_phases(plan.phases, plan.num_epochs),
      lr_multiplier=np.float32(1.0)))


def _max_abs_diff(a: Any, b: Any) -> float:
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _lr_study_steppers(setup: RunSetup, feed: InMemoryFeed, k: int,
                       compilers: dict[str, StepCompiler]
                       ) -> tuple[dict[str, tuple[Callable[[Any, int], Any], Any]],
                                  dict[str, Any]]:
  """(stepper, state) of each lr_study step variant, and the check that a measured update
  equals one without the measurement."""
  phase, seed = setup.plan.phases[0], 0
  steps = {name: c.train_step(phase.per_device_batch, phase.accumulation_steps)
           for name, c in compilers.items()}
  (split,), _ = next(iter(feed.epoch(seed, 0, phase.batch_size, phase.updates_per_epoch)))
  inputs = step_inputs(setup, seed)
  counts = {n: devices.replicate(np.int32(n)) for n in {1, k}}
  fresh = lambda: devices.replicate(init_train_state(setup.model, setup.tx, seed,
                                                     setup.spec.image_shape))
  # The check: one update (update 0, measured) from the same state.
  host = {name: devices.unreplicate(step(fresh(), split, inputs, counts[1]))
          for name, step in steps.items()}
  check = {'measured': float(host['with'].noise.weight) > 0,
           'params_max_abs_diff_without': _max_abs_diff(host['with'].params,
                                                        host['without'].params)}
  sync = max_in_flight()

  def stepper(step: Callable[..., Any], per_call: int) -> Callable[[Any, int], Any]:
    def run_updates(state: Any, updates: int) -> Any:
      for _ in range(updates // per_call):
        state = step(state, split, inputs, counts[per_call])
        if sync:
          jax.block_until_ready(state)
      return state
    return run_updates

  steppers = {name: (stepper(step, k), fresh()) for name, step in steps.items()}
  steppers['with_k1'] = (stepper(steps['with'], 1), fresh())
  steppers['without_k1'] = (stepper(steps['without'], 1), fresh())
  return steppers, check


def _jit_steppers(data: HostData, num_classes: int, batch_size: int, learning_rate: float
                  ) -> dict[str, tuple[Callable[[Any, int], Any], Any]]:
  """(stepper, state) of the host-fed jit step and of the same step on a device batch."""
  model = dense_mlp(num_classes)
  tx = optax.sgd(learning_rate, momentum=MOMENTUM)
  state = lambda: train_state.TrainState.create(
      apply_fn=model.apply, tx=tx,
      params=model.init(jax.random.PRNGKey(0), jnp.zeros((1, data.images.shape[1])))['params'])
  perm = np.random.default_rng(0).permutation(len(data.labels))
  per_epoch = len(data.labels) // batch_size
  fixed = jax.device_put((data.images[perm[:batch_size]], data.labels[perm[:batch_size]]))
  position = [0]

  def host_fed(state: Any, updates: int) -> Any:
    for _ in range(updates):
      i = position[0] = (position[0] + 1) % per_epoch
      idx = perm[i * batch_size:(i + 1) * batch_size]
      state, _, _ = jit_train_step(state, data.images[idx, ...], data.labels[idx])
    return state

  def device_batch(state: Any, updates: int) -> Any:
    for _ in range(updates):
      state, _, _ = jit_train_step(state, *fixed)
    return state

  return {'jax_jit': (host_fed, state()), 'jax_jit_device_batch': (device_batch, state())}


def step_level(setup: RunSetup, feed: InMemoryFeed, data: HostData, options: Options,
               compilers: dict[str, StepCompiler] | None = None) -> dict[str, Any]:
  """Every step variant (:data:`STEP_VARIANTS`) timed alone in alternating blocks of the
  same updates; ``compilers`` may hold lr_study's compilers already built ('with',
  'without'). Returns µs per update, the noise measurement's cost and each variant's
  speed relative to the host-fed jit step, as medians over blocks of paired ratios."""
  phase = setup.plan.phases[0]
  k = min(setup.config.updates_per_dispatch, max_in_flight() or phase.updates_per_epoch,
          phase.updates_per_epoch)
  compilers = compilers or {'with': make_compiler(setup),
                            'without': make_compiler(setup, measure=False)}
  steppers, check = _lr_study_steppers(setup, feed, k, compilers)
  steppers |= _jit_steppers(data, setup.spec.num_classes, phase.batch_size,
                            options.learning_rate)
  updates = k * max(1, round(options.noise_examples / (k * phase.batch_size)))
  states = {name: jax.block_until_ready(run_updates(state, k))  # compiles, warms up
            for name, (run_updates, state) in steppers.items()}
  times: dict[str, list[float]] = {name: [] for name in STEP_VARIANTS}
  for block in range(options.noise_blocks):
    for name in STEP_VARIANTS if block % 2 == 0 else STEP_VARIANTS[::-1]:
      started = time.perf_counter()
      states[name] = jax.block_until_ready(steppers[name][0](states[name], updates))
      times[name].append((time.perf_counter() - started) / updates * 1e6)
  paired = lambda f, *names: statistics.median(
      f(*values) for values in zip(*(times[n] for n in names), strict=True))
  return {
      'updates_per_dispatch': k, 'updates_per_block': updates, 'blocks': options.noise_blocks,
      'gradient_noise_every_updates': setup.config.gradient_noise_every_updates,
      'us_per_update': {name: summary(v) for name, v in times.items()},
      'cost_percent': paired(lambda w, wo: 100 * (w - wo) / w, 'with', 'without'),
      'speed_vs_jax_jit': {name: paired(lambda j, x: j / x, 'jax_jit', name)
                           for name in STEP_VARIANTS},
      'check': check,
  }


# ---------------------------------------------------------------------------------------
# Cold starts, each in a fresh process.

def first_update(options: Options, loop: str) -> dict[str, Any]:
  """In a fresh process: load the data, start ``loop`` for one epoch and time its first
  update; times are ``time.time()`` so that the launching process can compare them."""
  imported = time.time()
  batch_size = options.batch_sizes[0]
  setup = run_setup(options, batch_size, epochs=1)
  arrays = load_dataset_arrays(setup.config.dataset)
  if loop == 'lr_study':
    feed = InMemoryFeed(arrays, setup.spec, setup.config.dataset.eval_batch_size)
  else:
    data = host_data(arrays)
  loaded = time.time()
  compiled = len(XLA_COMPILES)
  if loop == 'lr_study':
    with tempfile.TemporaryDirectory(prefix='lr_study_throughput_') as workdir:
      result = LrStudyLoop(setup, make_compiler(setup), workdir).run(feed, 0)
  else:
    result = jax_jit_run(data, setup.spec.num_classes, batch_size, 1, options.learning_rate, 0)
  wall = time.time() - time.perf_counter()  # the offset from the perf clock to time.time()
  before = XLA_COMPILES[compiled:compiled + result['xla_compiles_before_first_update']]
  slowest = sorted(before, key=lambda c: -c[1])[:5]
  return {'imported': imported, 'data_loaded': loaded,
          'loop_started': result['start'] + wall,
          'first_update': result['start'] + result['time_to_first_update_s'] + wall,
          'first_dispatch_updates': result['first_dispatch_updates'],
          'xla_compiles_before_first_update': len(before),
          'xla_compile_seconds_before_first_update': sum(c[1] for c in before),
          'slowest_compiles': [[name, round(seconds, 3)] for name, seconds in slowest]}


def cold_start(options: Options, loop: str, batch_size: int) -> dict[str, Any]:
  """Runs :func:`first_update` in a new ``python`` and times it from the launch."""
  launched = time.time()
  out = subprocess.run([sys.executable, '-m', 'benchmarks.throughput',
                        *options.child_argv(loop, batch_size)],
                       capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  child = json.loads(out.stdout.strip().splitlines()[-1])
  return {'launch_to_first_update_s': child['first_update'] - launched,
          'imports_s': child['imported'] - launched,
          'data_load_s': child['data_loaded'] - child['imported'],
          'loop_start_to_first_update_s': child['first_update'] - child['loop_started'],
          **{key: child[key] for key in ('first_dispatch_updates',
                                         'xla_compiles_before_first_update',
                                         'xla_compile_seconds_before_first_update',
                                         'slowest_compiles')}}


# ---------------------------------------------------------------------------------------
# The benchmark.

def summary(values: Sequence[float]) -> dict[str, Any]:
  return {'median': statistics.median(values), 'mean': statistics.fmean(values),
          'min': min(values), 'max': max(values), 'values': list(values)}


def load_sample(label: str) -> dict[str, Any]:
  return {'at': label, 'load_average': list(os.getloadavg())}


def command(argv: Sequence[str]) -> str:
  flags_env = os.environ.get('XLA_FLAGS', '')
  return ' '.join([f'XLA_FLAGS={flags_env}'] * bool(flags_env)
                  + ['python -m benchmarks.throughput', *argv])


def check_options(options: Options, num_train_examples: int, num_devices: int) -> None:
  """ConfigError on a setting the benchmark cannot run with."""
  for name in ('rounds', 'noise_blocks', 'noise_examples'):
    if getattr(options, name) < 1:
      raise ConfigError(f'--{name} must be >= 1, got {getattr(options, name)}')
  if options.epochs < 2:
    raise ConfigError(f'--epochs must be >= 2 (the first is not timed), got {options.epochs}')
  if not options.batch_sizes:
    raise ConfigError('--batch_sizes is empty')
  for b in options.batch_sizes:
    if b < 2 or b % num_devices or b > num_train_examples:
      raise ConfigError(f'batch size {b} must be in [2, {num_train_examples}] and divisible '
                        f'by the {num_devices} devices')


def _loop_result(runs: list[dict[str, Any]], examples_per_epoch: int) -> dict[str, Any]:
  """A loop's results over its runs; the epochs after the first of each run are timed."""
  timed = [s for run in runs for s in run['epoch_seconds'][1:]]
  ttfu = [run['time_to_first_update_s'] for run in runs]
  result = {
      'examples_per_epoch': examples_per_epoch,
      'epoch_seconds': summary(timed),
      'examples_per_second': summary([examples_per_epoch / s for s in timed]),
      'examples_per_second_per_run': [
          examples_per_epoch / statistics.median(run['epoch_seconds'][1:]) for run in runs],
      'time_to_first_update_s': {'first_run': ttfu[0],
                                 'warm': statistics.median(ttfu[1:]) if ttfu[1:] else None},
      'first_dispatch_updates': runs[0]['first_dispatch_updates'],
      'final_test_accuracy': [run['final_test_accuracy'] for run in runs],
      'untimed_first_epoch_seconds': [run['epoch_seconds'][0] for run in runs],
  }
  if 'xla_compiles' in runs[0]:
    result['xla_compiles_per_run'] = [run['xla_compiles'] for run in runs]
    result['xla_compiles_before_first_update'] = [run['xla_compiles_before_first_update']
                                                  for run in runs]
  if 'train_step_compiles_so_far' in runs[0]:
    result['compiles'] = runs[-1]['train_step_compiles_so_far']
    result['run_wall_time_s'] = [run['run_wall_time_s'] for run in runs]
  return result


def round_order(names: Sequence[str], r: int) -> list[str]:
  """The loops of round ``r`` in the order they run: lr_study between its target
  baselines (:data:`BASELINES`), the three as one unit whose direction alternates, and
  the units taking turns to go first."""
  first, *rest = BASELINES
  group = [n for n in (first, 'lr_study', *rest) if n in names]
  if r % 2:
    group.reverse()
  units = [group] + [[n] for n in names if n not in group]
  first = r % len(units)
  return [n for unit in units[first:] + units[:first] for n in unit]


def time_batch_size(options: Options, b: int, setups: dict[Any, RunSetup],
                    feed: InMemoryFeed, data: HostData, torch: Any, workdir: str
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
  """Every loop at batch size ``b``, ``options.rounds`` runs each, taking turns; then the
  step-level timings (:func:`step_level`). Returns both."""
  spec = setups[b, 'lr_study'].spec
  lr_loops = {
      'lr_study': LrStudyLoop(setups[b, 'lr_study'], make_compiler(setups[b, 'lr_study']),
                              os.path.join(workdir, f'b{b}', 'lr_study')),
      'lr_study_k1': LrStudyLoop(setups[b, 'lr_study_k1'],
                                 make_compiler(setups[b, 'lr_study_k1']),
                                 os.path.join(workdir, f'b{b}', 'lr_study_k1')),
      'lr_study_no_noise': LrStudyLoop(
          setups[b, 'lr_study'], make_compiler(setups[b, 'lr_study'], measure=False),
          os.path.join(workdir, f'b{b}', 'lr_study_no_noise')),
  }
  runners: dict[str, Callable[[int], dict[str, Any]]] = {
      name: functools.partial(loop.run, feed) for name, loop in lr_loops.items()}
  for name in JIT_LOOPS:
    runners[name] = functools.partial(jax_jit_run, data, spec.num_classes, b, options.epochs,
                                      options.learning_rate, loop=name)
  for name in TORCH_LOOPS if torch is not None else ():
    runners[name] = functools.partial(torch_run, torch, data, spec.num_classes, b,
                                      options.epochs, options.learning_rate,
                                      dataloader=name == 'torch_dataloader')
  runs: dict[str, list[dict[str, Any]]] = {name: [] for name in runners}
  for r in range(options.rounds):
    for name in round_order(list(runners), r):
      runs[name].append(runners[name](r))
      print(f'B={b} round {r} {name}: epochs '
            + ', '.join(f'{s:.3f}' for s in runs[name][-1]['epoch_seconds']) + ' s',
            flush=True)
  examples_per_epoch = (spec.num_train_examples // b) * b
  steps = step_level(setups[b, 'lr_study'], feed, data, options,
                     {'with': lr_loops['lr_study'].compiler,
                      'without': lr_loops['lr_study_no_noise'].compiler})
  return ({name: _loop_result(name_runs, examples_per_epoch)
           for name, name_runs in runs.items()}, steps)


def run(options: Options) -> dict[str, Any]:
  """Runs every loop at every batch size and returns the results record."""
  spec = dataset_spec(dataset_config(options))
  check_options(options, spec.num_train_examples, jax.local_device_count())
  setups = {}
  for b in options.batch_sizes:  # every config is checked before any data is read
    setups[b, 'lr_study'] = run_setup(options, b)
    setups[b, 'lr_study_k1'] = run_setup(options, b, updates_per_dispatch=1)
  loads = [load_sample('start')]
  cold = {}
  if options.cold_start:
    for b in options.batch_sizes:
      for loop in COLD_START_LOOPS:
        cold.setdefault(loop, {})[str(b)] = cold_start(options, loop, b)
        print(f'B={b} cold start {loop}: {cold[loop][str(b)]}', flush=True)
  started = time.perf_counter()
  dataset_cfg = setups[options.batch_sizes[0], 'lr_study'].config.dataset
  arrays = load_dataset_arrays(dataset_cfg)
  feed = InMemoryFeed(arrays, spec, dataset_cfg.eval_batch_size)  # what load_feed builds
  data = host_data(arrays)
  load_seconds = time.perf_counter() - started
  torch = torch_module() if options.torch else None
  results: dict[str, dict[str, Any]] = {}
  steps: dict[str, Any] = {}
  with tempfile.TemporaryDirectory(prefix='lr_study_throughput_') as workdir:
    for b in options.batch_sizes:
      loads.append(load_sample(f'B={b} start'))
      loops, steps[str(b)] = time_batch_size(options, b, setups, feed, data, torch, workdir)
      for name, result in loops.items():
        results.setdefault(name, {})[str(b)] = result
      loads.append(load_sample(f'B={b} end'))
  return _record(options, spec, results, steps, cold, loads, load_seconds, torch, setups)


def _ratio(results: dict[str, Any], a: str, b: str, batch: str, how: str = 'median'
           ) -> float | None:
  """examples/s of loop ``a`` ÷ loop ``b``: of the epoch medians (``how='median'``), of
  the fastest epochs (``'max'``), or the median over rounds of each round's ratio
  (``'paired'``)."""
  if batch not in results.get(a, {}) or batch not in results.get(b, {}):
    return None
  x, y = results[a][batch], results[b][batch]
  if how == 'paired':
    return statistics.median(
        p / q for p, q in zip(x['examples_per_second_per_run'],
                              y['examples_per_second_per_run'], strict=True))
  return x['examples_per_second'][how] / y['examples_per_second'][how]


HEADLINES = tuple(f'lr_study / {baseline}' for baseline in BASELINES)
RATIOS = (*(('lr_study', baseline) for baseline in BASELINES), ('lr_study_k1', 'jax_jit'),
          ('lr_study', 'lr_study_k1'), ('lr_study_no_noise', 'jax_jit'),
          ('jax_jit_tfdata', 'jax_jit'), ('jax_jit_device_batch', 'jax_jit'),
          ('lr_study', 'torch_randperm'))


def _record(options: Options, spec: Any, results: dict[str, Any], steps: dict[str, Any],
            cold: dict[str, Any], loads: list[dict[str, Any]], load_seconds: float,
            torch: Any, setups: dict[Any, RunSetup]) -> dict[str, Any]:
  batches = [str(b) for b in options.batch_sizes]
  ratios, paired, best = ({b: {f'{x} / {y}': _ratio(results, x, y, b, how) for x, y in RATIOS}
                           for b in batches} for how in ('median', 'paired', 'max'))
  for b in batches:
    no_noise, with_noise = (results[n][b]['examples_per_second']['median']
                            for n in ('lr_study_no_noise', 'lr_study'))
    steps[b]['loop_cost_percent'] = 100 * (1 - with_noise / no_noise)
  targets = {str(b): t for b, t in TARGETS.items() if str(b) in batches}
  device = jax.local_devices()[0]
  return {
      'benchmark': 'throughput',
      'command': command(options.argv),
      'dataset': spec.name,
      'num_train_examples': spec.num_train_examples,
      'model': f'mlp {int(np.prod(spec.image_shape))}-{"-".join(map(str, WIDTHS))}-'
               f'{spec.num_classes}',
      'optimizer': f'SGD with momentum {MOMENTUM}, constant LR {options.learning_rate}',
      'batch_sizes': list(options.batch_sizes),
      'rounds': options.rounds,
      'epochs_per_run': options.epochs,
      'timed_epochs_per_loop': options.rounds * (options.epochs - 1),
      'updates_per_dispatch': setups[options.batch_sizes[0], 'lr_study'].config
                              .updates_per_dispatch,
      'device_platform': device.platform,
      'device_kind': device.device_kind,
      'device_count': jax.local_device_count(),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'host_cpus': os.cpu_count(),
      'host_load': loads,
      'data_load_seconds': load_seconds,
      'jax_version': jax.__version__,
      'torch_version': torch.__version__ if torch is not None else None,
      'torch_threads': torch.get_num_threads() if torch is not None else None,
      'packages': package_versions(),
      'git': git_commit(),
      'loops': results,
      'ratios': ratios,
      'paired_ratios': paired,
      'best_epoch_ratios': best,
      'targets': targets,
      'meets_targets': {baseline: {b: ratios[b][f'lr_study / {baseline}'] >= t
                                   for b, t in targets.items()} for baseline in BASELINES},
      'cold_start': cold or None,
      'step_level': steps,
      'noise_target_percent': NOISE_TARGET_PERCENT,
  }


def _fmt(value: float | None, fmt: str) -> str:
  return '–' if value is None else fmt.format(value)


def _table(batches: Sequence[str], rows: Sequence[tuple[str, Callable[[str], str]]]
           ) -> list[str]:
  return (['| | ' + ' | '.join(f'B = {b}' for b in batches) + ' |',
           '| --- |' + ' ---: |' * len(batches)]
          + [f'| {title} | ' + ' | '.join(cell(b) for b in batches) + ' |'
             for title, cell in rows])


def markdown(r: dict[str, Any]) -> str:
  """The results as Markdown tables."""
  batches = [str(b) for b in r['batch_sizes']]
  loops = r['loops']
  k = r['updates_per_dispatch']
  rate = lambda loop: lambda b: f'{loops[loop][b]["examples_per_second"]["median"]:,.0f}'
  rows = [(f'{LOOP_TITLES[loop].format(k=k)}, examples/s', rate(loop))
          for loop in LOOP_TITLES if loop in loops]
  for x, y in RATIOS:
    key = f'{x} / {y}'
    if any(r['ratios'][b][key] is not None for b in batches):
      title = f'**{key}**' if key in HEADLINES else key
      rows.append((title, lambda b, key=key: _fmt(r['ratios'][b][key], '{:.2f}×')))
  for key in (*HEADLINES, 'lr_study_no_noise / jax_jit', 'jax_jit_device_batch / jax_jit'):
    rows.append((f'{key}: paired by round; best epochs', lambda b, key=key: (
        f'{r["paired_ratios"][b][key]:.2f}×; {r["best_epoch_ratios"][b][key]:.2f}×')))
  for baseline, label in BASELINES.items():
    met = r['meets_targets'][baseline]
    rows.append((f'target {label} (lr_study / {baseline})', lambda b, met=met: (
        _fmt(r['targets'].get(b), '≥ {:.2f}×')
        + ((' met' if met[b] else ' **missed**') if b in met else ''))))
  lr = lambda b: loops['lr_study'][b]
  rows += [
      ('lr_study train-step compiles, all seeds', lambda b: str(lr(b)['compiles'])),
      ('lr_study XLA compiles per run: first seed, later seeds',
       lambda b: f'{lr(b)["xla_compiles_per_run"][0]}, '
                 f'{max(lr(b)["xla_compiles_per_run"][1:] or [0])}'),
  ]
  for loop in ('lr_study', 'jax_jit'):
    ttfu = lambda b, loop=loop: loops[loop][b]['time_to_first_update_s']
    rows.append((f'{loop} time to first update in this process: first run / later runs, s',
                 lambda b, ttfu=ttfu: f'{ttfu(b)["first_run"]:.2f} / '
                 + _fmt(ttfu(b)['warm'], '{:.2f}')))
  for loop in (loop for loop in COLD_START_LOOPS if loop in (r['cold_start'] or {})):
    c = r['cold_start'][loop]
    rows.append((f'{loop} cold start, launch → first update (loop start → first update; '
                 'XLA compiles before it), s',
                 lambda b, c=c: f'{c[b]["launch_to_first_update_s"]:.1f} '
                 f'({c[b]["loop_start_to_first_update_s"]:.2f}; '
                 f'{c[b]["xla_compiles_before_first_update"]})'))
  n = r['step_level']
  us = lambda v: lambda b: f'{n[b]["us_per_update"][v]["median"]:,.0f}'
  us_best = lambda v: lambda b: (f'{n[b]["us_per_update"][v]["median"]:,.0f} '
                                 f'({n[b]["us_per_update"][v]["min"]:,.0f})')
  pct = lambda key: lambda b: f'{n[b][key]:.1f}%'
  speed = lambda v: lambda b: f'{n[b]["speed_vs_jax_jit"][v]:.2f}×'
  step_rows = [
      (f'lr_study step, K = {k} per call (as the loop runs it)', 'with'),
      ('lr_study step, K = 1 per call', 'with_k1'),
      (f'lr_study step without the noise measurement, K = {k}', 'without'),
      ('lr_study step without the noise measurement, K = 1', 'without_k1'),
      ('host-fed jit step (host slicing, copy, dispatch)', 'jax_jit'),
      ('the same jit step on a fixed on-device batch', 'jax_jit_device_batch'),
  ]
  step_rows = [row for title, v in step_rows if v in n[batches[0]]['us_per_update']
               for row in ((f'{title}, µs/update (fastest block)', us_best(v)),
                           (f'{title}, speed ÷ host-fed jit', speed(v)))]
  noise_rows = [
      ('step with the measurement (lr_study), µs/update', us('with')),
      ('step without it, µs/update', us('without')),
      ('**cost, % of the step** (step level)', pct('cost_percent')),
      ('cost in the loop (epoch medians)', pct('loop_cost_percent')),
      ('check: max param difference after a measured update vs without',
       lambda b: f'{n[b]["check"]["params_max_abs_diff_without"]:.1e}'),
  ]
  verdict = ('under' if all(n[b]['cost_percent'] < r['noise_target_percent'] for b in batches)
             else 'not under')
  loads = ', '.join(f'{s["at"]} {s["load_average"][0]:.1f}' for s in r['host_load'])
  lines = [
      f'# Training throughput: {r["dataset"]} ({r["num_train_examples"]:,} examples), '
      f'{r["model"]}, {r["optimizer"]}',
      '',
      f'`{r["command"]}`',
      '',
      f'{r["device_count"]} × {r["device_kind"]} ({r["device_platform"]}) on {r["host_cpus"]} '
      f'host CPUs; jax {r["jax_version"]}'
      + (f', torch {r["torch_version"]} ({r["torch_threads"]} threads)'
         if r['torch_version'] else ', PyTorch not timed (not installed, or --notorch)')
      + f'. Median whole-epoch examples/s over {r["timed_epochs_per_loop"]} epochs per loop '
      f'({r["rounds"]} runs of {r["epochs_per_run"]} epochs taking turns, the first epoch '
      f'of each run not timed). 1-minute load average: {loads}.',
      '',
      *_table(batches, rows),
      '',
      f'Step level: the compiled steps alone, in {n[batches[0]]["blocks"]} alternating '
      f'blocks of the same updates; medians over blocks, speeds paired by block:',
      '',
      *_table(batches, step_rows),
      '',
      f'Gradient noise scale measurement every '
      f'{n[batches[0]]["gradient_noise_every_updates"]} updates, cost per update (target < '
      f'{r["noise_target_percent"]:g}%: {verdict}):',
      '',
      *_table(batches, noise_rows),
  ]
  return '\n'.join(lines) + '\n'


def write(results: dict[str, Any], out_dir: str) -> str:
  """Writes the JSON and Markdown results; returns the Markdown."""
  os.makedirs(out_dir, exist_ok=True)
  run_files.write_json(os.path.join(out_dir, JSON_NAME), results)
  text = markdown(results)
  with open(os.path.join(out_dir, MARKDOWN_NAME), 'w') as f:
    f.write(text)
  return text


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  options = Options.from_flags(flags.FLAGS, sys.argv[1:])
  try:
    if flags.FLAGS.first_update_of:
      print(json.dumps(first_update(options, flags.FLAGS.first_update_of)))
      return
    results = run(options)
  except ConfigError as e:
    sys.exit(f'error: {e}')
  print(write(results, options.out_dir), end='')


if __name__ == '__main__':
  define_flags()
  app.run(main)
