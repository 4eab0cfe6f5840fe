"""The data-parallel train and eval steps, compiled with ``jax.pmap`` over local devices.

One update of the global batch ``B`` on ``D`` devices (Goyal et al. 2017; the Flax
ImageNet example):

* each device takes its ``B / D`` examples, gathered on the device from the resident
  training split (``in_memory.take_micro_batches``) or streamed in
  (``lr_study.data.streaming``), as ``k`` micro-batches of ``B / (D·k)``; it sums their
  gradients with ``lax.scan``, one forward pass each;
* gradients, loss, accuracy and batch-norm statistics are averaged across devices with
  ``lax.pmean`` (not on one device, where XLA:CPU would copy them); the running
  batch-norm statistics move once per update, by the mean of the micro-batches' moves,
  so they do not depend on ``k`` or ``D``;
* the LR is ``lr_study.schedules.clock.learning_rate`` of the update counter, computed
  on the device and written into the optimizer's injected hyperparameters;
* the state records the first update whose loss or gradient is not finite;
* in memory, the state keeps each training example's loss at its last visit
  (``TrainState.example_loss``, gathered from every device), from which the gradient
  noise measurement picks the examples that carry the gradient's noise.

The gradient noise scale is measured apart from the updates, at fixed parameters
(``lr_study.training.gradient_noise``), so the step has no per-update branch.

An in-memory step runs ``num_updates`` updates per call (``lax.fori_loop``: one dispatch
for many updates, the count itself data). The seed, the plan's phase table and the
dynamic LR multiplier are data too (:class:`StepInputs`), so the step compiles once per
static shape ``(per_device_batch, accumulation_steps)``, for every seed of a study.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lr_study import batching, rng
from lr_study.data.in_memory import (DeviceData, micro_batch_indices, take_examples,
                                     transform_batch)
from lr_study.runtime import cpu_compiled, devices
from lr_study.runtime.devices import AXIS
from lr_study.schedules import LRSchedule, clock
from lr_study.optimizers import with_learning_rate


@flax.struct.dataclass
class MetricSums:
  """Sums over the updates since the last evaluation (identical on every device)."""

  loss: jax.Array
  accuracy: jax.Array
  updates: jax.Array

  @classmethod
  def zeros(cls) -> 'MetricSums':
    return cls(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # parameter updates applied so far
  params: Any
  batch_stats: Any
  opt_state: optax.OptState
  metrics: MetricSums
  diverged_at: jax.Array  # the first update (1-based) with a non-finite loss or gradient; 0: none
  # float32 [N]: each training example's loss at its last update (+inf: not yet seen), by
  # its index in the whole split; None where nothing reads it (gradient_noise.memory_size).
  example_loss: jax.Array | None


@flax.struct.dataclass
class StepInputs:
  """What a step reads besides the state and the data, replicated on every device."""

  seed: jax.Array
  table: clock.PhaseTable  # the plan's phases, padded to a fixed length
  lr_multiplier: jax.Array  # the dynamic schedules' multiplier (plateau, manual)


def init_train_state(model: nn.Module, tx: optax.GradientTransformation, seed: int,
                     input_shape: tuple[int, ...], num_examples: int = 0) -> TrainState:
  """The state before the first update, parameters drawn from ``rng.params_key(seed)``
  (float32 whatever the model's compute dtype), with an ``example_loss`` of
  ``num_examples`` entries, all +inf (0: None); the caller replicates it.

  One compiled function per (model, optimizer, input shape), the seed its data: every
  seed of a study shares one compile.
  """
  return _init_fn(model, tx, tuple(input_shape), num_examples)(np.int32(seed))


@functools.cache
def _init_fn(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
             num_examples: int) -> Callable[[jax.Array], TrainState]:
  def init(seed: jax.Array) -> TrainState:
    variables = model.init({'params': rng.params_key(seed)}, jnp.zeros((1, *input_shape)),
                           train=False)
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params),
                      metrics=MetricSums.zeros(), diverged_at=jnp.zeros((), jnp.int32),
                      example_loss=(jnp.full((num_examples,), jnp.inf, jnp.float32)
                                    if num_examples else None))

  return jax.jit(init)


def cross_entropy_and_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-example softmax cross-entropy and 0/1 correctness, in float32 whatever the
  logits' compute dtype."""
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return loss, (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


class StepCompiler:
  """Builds the pmapped train step for each static shape, once, and counts the traces.

  ``traces`` counts how often JAX traced a train step: one per distinct
  ``(per_device_batch, accumulation_steps)``. A retrace for any other reason (a new
  seed, LR, epoch or update count) would show here, and the tests check that it does not.
  """

  def __init__(self, model: nn.Module, tx: optax.GradientTransformation, schedule: LRSchedule,
               *, augment: bool, mean: Any = 0.0, std: Any = 1.0):
    self.model, self.tx, self.schedule, self.augment = model, tx, schedule, augment
    self.mean, self.std = mean, std  # normalisation of streamed batches
    self.traces = 0
    self._steps: dict[tuple[int, int, bool], Callable[..., TrainState]] = {}

  def train_step(self, per_device_batch: int, accumulation_steps: int, streaming: bool = False
                 ) -> Callable[..., TrainState]:
    """The pmapped step for one static shape, compiled on its first call.

    In-memory: ``step(state, split: DeviceData, inputs: StepInputs, num_updates)`` runs
    ``num_updates`` updates (a replicated int32), each gathering its batch on the device
    at the update's place in the epoch of ``split.perm``. Streaming:
    ``step(state, batch, inputs)`` runs one update on a batch of
    ``lr_study.data.streaming.epoch_batches``.
    """
    key = (per_device_batch, accumulation_steps, streaming)
    if key not in self._steps:
      fn = functools.partial(self._stream_step if streaming else self._train_step,
                             per_device_batch=per_device_batch,
                             accumulation_steps=accumulation_steps)
      self._steps[key] = cpu_compiled.wrap(jax.pmap(fn, axis_name=AXIS, donate_argnums=(0,)))
    return self._steps[key]

  def dispatcher(self, per_device_batch: int, accumulation_steps: int, streaming: bool
                 ) -> Callable[[TrainState, tuple[Any, ...], StepInputs, int], TrainState]:
    """``dispatch(state, args, inputs, k)``: ``k`` updates on the step's data ``args``
    (from ``Feed.epoch``) in one call. Streamed batches are one update each."""
    step = self.train_step(per_device_batch, accumulation_steps, streaming)
    if streaming:
      return lambda state, args, inputs, k: step(state, *args, inputs)
    return lambda state, args, inputs, k: step(state, *args, inputs, _replicated_count(k))

  def _train_step(self, state: TrainState, split: DeviceData, inputs: StepInputs,
                  num_updates: jax.Array, *, per_device_batch: int,
                  accumulation_steps: int) -> TrainState:
    self.traces += 1  # runs at trace time only

    def batch(update: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
      epoch, position = clock.epoch_and_position(inputs.table, update)
      idx = micro_batch_indices(split, position, per_device_batch, accumulation_steps,
                                jax.local_device_count())
      x, y = take_examples(split, idx, augment=self.augment, seed=inputs.seed, epoch=epoch)
      return x, y, split.first_index + idx

    return _loop(state, num_updates, batch,
                 lambda state, xyi: self._update(state, *xyi, inputs))

  def _stream_step(self, state: TrainState, batch: dict[str, jax.Array], inputs: StepInputs,
                   *, per_device_batch: int, accumulation_steps: int) -> TrainState:
    self.traces += 1
    epoch, _ = clock.epoch_and_position(inputs.table, state.step)
    x = transform_batch(batch['image'], batch['index'], self.mean, self.std,
                        augment=self.augment, seed=inputs.seed, epoch=epoch)
    m = batching.micro_batch_size(per_device_batch, accumulation_steps)
    x = x.reshape(accumulation_steps, m, *x.shape[1:])
    y = batch['label'].reshape(accumulation_steps, m)
    return self._update(state, x, y, None, inputs)

  def _update(self, state: TrainState, x: jax.Array, y: jax.Array,
              indices: jax.Array | None, inputs: StepInputs) -> TrainState:
    """One parameter update from this device's micro-batches ``x`` [k, m, ...], ``y``
    [k, m]; the examples' losses are kept at their ``indices`` [k, m] in the whole split,
    where given."""
    k = x.shape[0]
    device = jax.lax.axis_index(AXIS)

    def gradient(xm: jax.Array, ym: jax.Array, j: jax.Array) -> tuple[Any, ...]:
      def loss_fn(params):
        logits, new_vars = self.model.apply(
            {'params': params, 'batch_stats': state.batch_stats}, xm, train=True,
            rngs={'dropout': rng.dropout_key(inputs.seed, state.step, device, j)},
            mutable=['batch_stats'])
        loss, correct = cross_entropy_and_accuracy(logits, ym)
        return loss.mean(), (new_vars.get('batch_stats', {}), correct.mean(), loss)

      (loss, (stats, acc, losses)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params)
      return (grads, stats, loss, acc), losses

    def micro_step(carry, micro):
      sums, losses = gradient(*micro)
      return jax.tree.map(jnp.add, carry, sums), losses

    zeros = jax.tree.map(jnp.zeros_like, (state.params, state.batch_stats, jnp.zeros(()),
                                          jnp.zeros(())))
    sums, example_losses = jax.lax.scan(micro_step, zeros, (x, y, jnp.arange(k)))
    local = jax.tree.map(lambda s: s / k, sums)
    grads, batch_stats, loss, acc = (jax.lax.pmean(local, AXIS) if jax.lax.axis_size(AXIS) > 1
                                     else local)

    learning_rate = clock.learning_rate(self.schedule, inputs.table, state.step,
                                        inputs.lr_multiplier)
    opt_state = with_learning_rate(state.opt_state, learning_rate)
    updates, opt_state = self.tx.update(grads, opt_state, state.params)
    finite = jnp.isfinite(loss) & jnp.isfinite(sq_norm(grads))
    diverged_at = jnp.where((state.diverged_at == 0) & ~finite, state.step + 1, state.diverged_at)
    metrics = MetricSums(state.metrics.loss + loss, state.metrics.accuracy + acc,
                         state.metrics.updates + 1)
    return TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                      batch_stats=batch_stats, opt_state=opt_state, metrics=metrics,
                      diverged_at=diverged_at,
                      example_loss=_kept_losses(state.example_loss, indices, example_losses))


def _kept_losses(example_loss: jax.Array | None, indices: jax.Array | None, losses: jax.Array
                 ) -> jax.Array | None:
  """``example_loss`` with every device's ``losses`` written at their ``indices`` (none
  where either is None)."""
  if indices is None or example_loss is None:
    return example_loss
  if jax.lax.axis_size(AXIS) > 1:
    indices, losses = jax.lax.all_gather((indices, losses), AXIS)
  return example_loss.at[indices.reshape(-1)].set(losses.reshape(-1))


def sq_norm(tree: Any) -> jax.Array:
  """Σ over every leaf of ``tree`` of Σ x², accumulated in float32 (finite exactly when
  every entry is)."""
  leaves = jax.tree_util.tree_leaves(tree)
  return sum((jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in leaves),
             jnp.zeros((), jnp.float32))


def _loop(state: TrainState, num_updates: jax.Array, batch: Callable[[jax.Array], Any],
          update: Callable[[TrainState, Any], TrainState]) -> TrainState:
  """``num_updates`` times ``update(state, batch(state.step))``."""
  return jax.lax.fori_loop(0, num_updates, lambda _, state: update(state, batch(state.step)),
                           state)


@functools.cache
def _replicated_count(k: int) -> jax.Array:
  """``k`` on every local device, made once per value: a dispatch copies nothing."""
  return devices.replicate(np.int32(k))


@functools.partial(jax.pmap, axis_name=AXIS, donate_argnums=(0,))
def reset_metrics(state: TrainState) -> TrainState:
  """The state with its metric sums zeroed, on the devices (after each evaluation)."""
  return state.replace(metrics=jax.tree.map(jnp.zeros_like, state.metrics))
