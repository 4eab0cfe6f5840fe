"""The data-parallel train and eval steps, compiled with ``jax.pmap`` over local devices.

One update of the global batch ``B`` on ``D`` devices (Goyal et al. 2017; the Flax
ImageNet example):

* each device gathers its ``B / D`` examples from the device-resident training split,
  at positions ``i·B_local + d·B/D`` of the epoch's permutation, where ``i`` is the
  update's index inside the epoch, ``d`` the device's index among this process's devices
  and ``B_local`` this process's share of ``B`` — no host-to-device copy;
* when ``B / D`` exceeds ``max_per_device_batch``, the device splits its share into
  ``k`` micro-batches and sums their gradients inside the step with ``lax.scan``; each
  micro-batch is one forward pass, so batch norm sees at most a micro-batch;
* gradients, loss, accuracy and batch-norm statistics are averaged across devices with
  ``lax.pmean``;
* the LR is computed on the device from the update counter and the epoch context,
  ``η = schedule(t) · lr_multiplier``, and written into the optimizer's injected
  hyperparameters: a new LR is data, never a recompile.

The step's static shape is ``(per_device_batch, accumulation_steps)``; everything else
is data, so a run compiles the step once per distinct shape in its plan.
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

from lr_study.runtime import devices
from lr_study.data.in_memory import (batch_start, normalize, take_batch, take_eval_batch,
                                     transform_batch)
from lr_study.runtime.devices import AXIS
from lr_study.training.optimizers import with_learning_rate
from lr_study.schedules import LRSchedule


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


@flax.struct.dataclass
class DeviceData:
  """One split kept on every device as uint8, with its normalisation constants."""

  images: jax.Array
  labels: jax.Array
  mean: jax.Array
  std: jax.Array
  first_index: Any = 0  # the split position of images[0]: this process's slice start


@flax.struct.dataclass
class EpochContext:
  """What changes once per epoch (or when a dynamic schedule acts), sent as data."""

  perm: jax.Array  # this epoch's permutation of the local training split
  epoch: jax.Array  # 0-based
  first_update: jax.Array  # update count at the start of the epoch
  updates_per_epoch: jax.Array
  lr_multiplier: jax.Array  # batch-schedule multiplier × dynamic (plateau/manual) multiplier
  local_device: jax.Array  # this device's index among the process's devices (not replicated)


def epoch_context(perm: np.ndarray, epoch: int, first_update: int, updates_per_epoch: int,
                  lr_multiplier: float) -> EpochContext:
  """The epoch's context on the local devices (one small copy per epoch)."""
  replicated = devices.replicate(dict(
      perm=perm, epoch=np.int32(epoch), first_update=np.int32(first_update),
      updates_per_epoch=np.int32(updates_per_epoch), lr_multiplier=np.float32(lr_multiplier)))
  return EpochContext(**replicated, local_device=devices.shard(
      np.arange(jax.local_device_count(), dtype=np.int32)))


def device_batch(step: jax.Array, data: DeviceData, ctx: EpochContext, per_device_batch: int,
                 *, augment: bool, seed: int) -> tuple[jax.Array, jax.Array]:
  """This device's batch for the update after ``step`` updates, gathered on the device:
  ``take_batch`` at ``batch_start`` of the epoch's permutation (call inside the pmap)."""
  start = batch_start(step - ctx.first_update, ctx.local_device, per_device_batch,
                      jax.local_device_count())
  return take_batch(data.images, data.labels, ctx.perm, start, per_device_batch, data.mean,
                    data.std, augment=augment, seed=seed, epoch=ctx.epoch,
                    first_index=data.first_index)


def init_train_state(model: nn.Module, tx: optax.GradientTransformation, seed: int,
                     input_shape: tuple[int, ...]) -> TrainState:
  """Initialises parameters on the host from ``seed``; the caller replicates them."""
  key = jax.random.PRNGKey(seed)
  variables = model.init({'params': key, 'dropout': key}, jnp.zeros((1, *input_shape)),
                         train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params),
                    metrics=MetricSums.zeros())


def cross_entropy_and_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-example softmax cross-entropy and 0/1 correctness."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return loss, (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


class StepCompiler:
  """Builds the pmapped train step for each static shape, once, and counts the traces.

  ``traces`` counts how often JAX traced a train step: one per distinct
  ``(per_device_batch, accumulation_steps)``. A retrace for any other reason (a new
  LR, a new epoch) would show here, and the tests check that it does not.
  """

  def __init__(self, model: nn.Module, tx: optax.GradientTransformation, schedule: LRSchedule,
               *, seed: int, augment: bool):
    self.model = model
    self.tx = tx
    self.schedule = schedule
    self.seed = seed
    self.augment = augment
    self.traces = 0
    self._steps: dict[tuple[int, int, bool], Callable[..., TrainState]] = {}

  def train_step(self, per_device_batch: int, accumulation_steps: int, streaming: bool = False
                 ) -> Callable[..., TrainState]:
    """The pmapped step for one static shape, compiled on its first call.

    In-memory mode: ``step(state, data: DeviceData, ctx)`` gathers its batch on the
    device. Streaming mode: ``step(state, batch, stats: DeviceData, ctx)`` takes a batch
    from ``lr_study.data.streaming.epoch_batches``; ``stats`` supplies only the
    normalisation constants (its images and labels are empty).
    """
    key = (per_device_batch, accumulation_steps, streaming)
    if key not in self._steps:
      fn = self._stream_step if streaming else functools.partial(
          self._train_step, per_device_batch=per_device_batch)
      self._steps[key] = jax.pmap(functools.partial(fn, accumulation_steps=accumulation_steps),
                                  axis_name=AXIS, donate_argnums=(0,))
    return self._steps[key]

  def learning_rate(self, step: jax.Array, ctx: EpochContext) -> jax.Array:
    """η for the update that follows ``step`` updates: schedule(t) · multiplier."""
    if self.schedule.clock == 'update':
      t = step.astype(jnp.float32)
    else:
      t = ctx.epoch + (step - ctx.first_update) / ctx.updates_per_epoch
    return jnp.asarray(self.schedule(t), jnp.float32) * ctx.lr_multiplier

  def _train_step(self, state: TrainState, data: DeviceData, ctx: EpochContext, *,
                  per_device_batch: int, accumulation_steps: int) -> TrainState:
    x, y = device_batch(state.step, data, ctx, per_device_batch, augment=self.augment,
                        seed=self.seed)
    return self._update(state, x, y, ctx, accumulation_steps)

  def _stream_step(self, state: TrainState, batch: dict[str, jax.Array], stats: DeviceData,
                   ctx: EpochContext, *, accumulation_steps: int) -> TrainState:
    x = transform_batch(batch['image'], batch['index'], stats.mean, stats.std,
                        augment=self.augment, seed=self.seed, epoch=ctx.epoch)
    return self._update(state, x, batch['label'], ctx, accumulation_steps)

  def _update(self, state: TrainState, x: jax.Array, y: jax.Array, ctx: EpochContext,
              accumulation_steps: int) -> TrainState:
    """One parameter update from this device's batch ``x, y``."""
    self.traces += 1  # runs at trace time only
    device = jax.lax.axis_index(AXIS)
    per_device_batch = x.shape[0]
    micro = per_device_batch // accumulation_steps
    x = x.reshape(accumulation_steps, micro, *x.shape[1:])
    y = y.reshape(accumulation_steps, micro)
    dropout_key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.seed), state.step),
                                     device)

    def micro_step(carry, inputs):
      grads_sum, batch_stats, loss_sum, acc_sum = carry
      xm, ym, i = inputs

      def loss_fn(params):
        logits, new_vars = self.model.apply(
            {'params': params, 'batch_stats': batch_stats}, xm, train=True,
            rngs={'dropout': jax.random.fold_in(dropout_key, i)}, mutable=['batch_stats'])
        loss, correct = cross_entropy_and_accuracy(logits, ym)
        return loss.mean(), (new_vars.get('batch_stats', {}), correct.mean())

      (loss, (new_stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      grads_sum = jax.tree.map(jnp.add, grads_sum, grads)
      return (grads_sum, new_stats, loss_sum + loss, acc_sum + acc), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    init = (zeros, state.batch_stats, jnp.zeros(()), jnp.zeros(()))
    (grads, batch_stats, loss, acc), _ = jax.lax.scan(
        micro_step, init, (x, y, jnp.arange(accumulation_steps)))
    grads, batch_stats, loss, acc = jax.lax.pmean(
        (jax.tree.map(lambda g: g / accumulation_steps, grads), batch_stats,
         loss / accumulation_steps, acc / accumulation_steps), AXIS)

    opt_state = with_learning_rate(state.opt_state, self.learning_rate(state.step, ctx))
    updates, opt_state = self.tx.update(grads, opt_state, state.params)
    metrics = MetricSums(state.metrics.loss + loss, state.metrics.accuracy + acc,
                         state.metrics.updates + 1)
    return TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                      batch_stats=batch_stats, opt_state=opt_state, metrics=metrics)


def _eval_sums(model: nn.Module, params: Any, batch_stats: Any, x: jax.Array, y: jax.Array,
               mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(loss sum, correct sum, count) over the examples with mask 1."""
  logits = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
  loss, correct = cross_entropy_and_accuracy(logits, y)
  return (loss * mask).sum(), (correct * mask).sum(), mask.sum()


def make_eval_step(model: nn.Module) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
  """The pmapped evaluation of a whole device-resident split in one call.

  Each device scans over its ``[steps, per_device]`` index batches; padded positions
  have mask 0, so every example is counted once. Returns (loss sum, correct sum, count),
  summed over devices.
  """

  def eval_all(params, batch_stats, data: DeviceData, idx: jax.Array, mask: jax.Array):
    def one_batch(sums, inputs):
      batch_idx, batch_mask = inputs
      x, y = take_eval_batch(data.images, data.labels, batch_idx, data.mean, data.std)
      return jax.tree.map(jnp.add, sums, _eval_sums(model, params, batch_stats, x, y,
                                                    batch_mask)), None

    sums, _ = jax.lax.scan(one_batch, (jnp.zeros(()), jnp.zeros(()), jnp.zeros(())), (idx, mask))
    return jax.lax.psum(sums, AXIS)

  return jax.pmap(eval_all, axis_name=AXIS)


def make_stream_eval_step(model: nn.Module) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
  """The pmapped evaluation of one streamed, padded and masked batch, summed over devices."""

  def eval_batch(params, batch_stats, batch: dict[str, jax.Array], stats: DeviceData):
    x = normalize(batch['image'], stats.mean, stats.std)
    return jax.lax.psum(_eval_sums(model, params, batch_stats, x, batch['label'],
                                   batch['mask']), AXIS)

  return jax.pmap(eval_batch, axis_name=AXIS)


@functools.partial(jax.pmap, axis_name=AXIS, donate_argnums=(0,))
def reset_metrics(state: TrainState) -> TrainState:
  """The state with its metric sums zeroed, on the devices (after each evaluation)."""
  return state.replace(metrics=jax.tree.map(jnp.zeros_like, state.metrics))
