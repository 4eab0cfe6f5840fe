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
* the state records the first update whose loss or gradient is not finite, and the
  moving averages of the gradient noise scale B_simple = tr(Σ)/|G|²
  (``lr_study.training.gradient_noise``), measured at the updates ``u`` (``state.step``
  before the update) with ``u < M`` or ``u % M == 0``, M =
  ``gradient_noise_every_updates`` (the first M all measured, so that the moving averages
  start from M estimates). Only the first update of a call can be measured: the loop
  ends every dispatch before a measured update (:meth:`StepCompiler.next_measured`), so
  a call is a loop of 0 or 1 measured updates, then a loop of plain ones, with no
  per-update branch (:meth:`StepCompiler._updates`). A measurement adds to the update
  only the squared norms of the small-batch gradients (each device's; on one device each
  micro-batch's, or without accumulation the first half's, one more backward pass over
  B/2 examples) and never changes the update's gradient, so the parameters do not
  depend on M.

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

from lr_study import rng
from lr_study.data.in_memory import DeviceData, take_micro_batches, transform_batch
from lr_study.runtime import cpu_compiled, devices
from lr_study.runtime.devices import AXIS
from lr_study.schedules import LRSchedule, clock
from lr_study.training import gradient_noise
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
  noise: gradient_noise.GradientNoiseState


@flax.struct.dataclass
class StepInputs:
  """What a step reads besides the state and the data, replicated on every device."""

  seed: jax.Array
  table: clock.PhaseTable  # the plan's phases, padded to a fixed length
  lr_multiplier: jax.Array  # the dynamic schedules' multiplier (plateau, manual)


def init_train_state(model: nn.Module, tx: optax.GradientTransformation, seed: int,
                     input_shape: tuple[int, ...]) -> TrainState:
  """Initialises parameters on the host from ``rng.params_key(seed)``; the caller
  replicates them."""
  variables = model.init({'params': rng.params_key(seed)}, jnp.zeros((1, *input_shape)),
                         train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params),
                    metrics=MetricSums.zeros(), diverged_at=jnp.zeros((), jnp.int32),
                    noise=gradient_noise.init())


def cross_entropy_and_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-example softmax cross-entropy and 0/1 correctness."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return loss, (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


class StepCompiler:
  """Builds the pmapped train step for each static shape, once, and counts the traces.

  ``traces`` counts how often JAX traced a train step: one per distinct
  ``(per_device_batch, accumulation_steps)``. A retrace for any other reason (a new
  seed, LR, epoch or update count) would show here, and the tests check that it does not.
  """

  def __init__(self, model: nn.Module, tx: optax.GradientTransformation, schedule: LRSchedule,
               *, augment: bool, mean: Any = 0.0, std: Any = 1.0,
               gradient_noise_decay: float = 0.99, gradient_noise_every_updates: int = 32,
               measure: bool = True):
    self.model, self.tx, self.schedule, self.augment = model, tx, schedule, augment
    self.noise_decay, self.noise_every = gradient_noise_decay, gradient_noise_every_updates
    self.measure = measure  # read at trace time; off, ``state.noise`` is carried unchanged
    self.mean, self.std = mean, std  # normalisation of streamed batches
    self.traces = 0
    self._steps: dict[tuple[int, int, bool], Callable[..., TrainState]] = {}

  def train_step(self, per_device_batch: int, accumulation_steps: int, streaming: bool = False
                 ) -> Callable[..., TrainState]:
    """The pmapped step for one static shape, compiled on its first call.

    In-memory: ``step(state, split: DeviceData, inputs: StepInputs, num_updates)`` runs
    ``num_updates`` updates (a replicated int32), each gathering its batch on the device
    at the update's place in the epoch of ``split.perm``; only the first can be measured
    (:meth:`next_measured`). Streaming:
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

  def next_measured(self, update: int) -> int | None:
    """The first update after ``update`` updates that the step measures: a dispatch
    must start there (a call measures only its first update). None when no update needs
    a dispatch of its own (no measurement, or one at every update)."""
    return None if self._every_update_alike else gradient_noise.next_measured(
        update, self.noise_every)

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

    def batch(update: jax.Array) -> tuple[jax.Array, jax.Array]:
      epoch, position = clock.epoch_and_position(inputs.table, update)
      return take_micro_batches(split, position, per_device_batch, accumulation_steps,
                                jax.local_device_count(), augment=self.augment,
                                seed=inputs.seed, epoch=epoch)

    return self._updates(state, num_updates, batch, inputs)

  @property
  def _every_update_alike(self) -> bool:
    """No measurement, or one at every update: no update needs to choose."""
    return not self.measure or self.noise_every == 1

  def _updates(self, state: TrainState, num_updates: jax.Array,
               batch: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
               inputs: StepInputs) -> TrainState:
    """``num_updates`` updates, each on ``batch(u)`` for its update counter ``u``; the
    first of them measured if it is due (:func:`gradient_noise.is_measured`), the others
    plain: a loop of 0 or 1 measured updates, then one of the rest. The caller starts a
    call at every measured update (:meth:`next_measured`); an update due later in a call
    would run plain."""
    update = lambda measured: lambda state, xy: self._update(state, *xy, inputs, measured)
    if self._every_update_alike:
      return _loop(state, num_updates, batch, update(self.measure))
    due = gradient_noise.is_measured(state.step, self.noise_every)
    measured = jnp.minimum(due.astype(num_updates.dtype), num_updates)
    state = _loop(state, measured, batch, update(True))
    return _loop(state, num_updates - measured, batch, update(False))

  def _stream_step(self, state: TrainState, batch: dict[str, jax.Array], inputs: StepInputs,
                   *, per_device_batch: int, accumulation_steps: int) -> TrainState:
    self.traces += 1
    epoch, _ = clock.epoch_and_position(inputs.table, state.step)
    x = transform_batch(batch['image'], batch['index'], self.mean, self.std,
                        augment=self.augment, seed=inputs.seed, epoch=epoch)
    m = per_device_batch // accumulation_steps
    x = x.reshape(accumulation_steps, m, *x.shape[1:])
    y = batch['label'].reshape(accumulation_steps, m)
    return self._updates(state, jnp.ones((), jnp.int32), lambda _: (x, y), inputs)

  def _update(self, state: TrainState, x: jax.Array, y: jax.Array,
              inputs: StepInputs, measured: bool) -> TrainState:
    """One parameter update from this device's micro-batches ``x`` [k, m, ...], ``y``
    [k, m]; ``measured``: with a gradient noise measurement."""
    k = x.shape[0]
    device = jax.lax.axis_index(AXIS)
    # The micro-batches' squared norms: the small batches on one device with accumulation.
    micro_sq = measured and k > 1 and jax.device_count() == 1

    def gradient(xm: jax.Array, ym: jax.Array, j: jax.Array) -> tuple[Any, ...]:
      def loss_fn(params):
        logits, new_vars = self.model.apply(
            {'params': params, 'batch_stats': state.batch_stats}, xm, train=True,
            rngs={'dropout': rng.dropout_key(inputs.seed, state.step, device, j)},
            mutable=['batch_stats'])
        loss, correct = cross_entropy_and_accuracy(logits, ym)
        return loss.mean(), (new_vars.get('batch_stats', {}), correct.mean())

      (loss, (stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      return grads, stats, loss, acc

    def micro_step(carry, micro):
      grads, stats, loss, acc = gradient(*micro)
      sq = gradient_noise.sq_norm(grads) if micro_sq else jnp.zeros(())
      return jax.tree.map(jnp.add, carry, (grads, stats, loss, acc, sq)), None

    zeros = jax.tree.map(jnp.zeros_like, (state.params, state.batch_stats, jnp.zeros(()),
                                          jnp.zeros(()), jnp.zeros(())))
    sums, _ = jax.lax.scan(micro_step, zeros, (x, y, jnp.arange(k)))
    local = jax.tree.map(lambda s: s / k, sums)
    averaged = jax.lax.pmean(local, AXIS) if jax.lax.axis_size(AXIS) > 1 else local
    grads, batch_stats, loss, acc, micro_sq_mean = averaged
    big = gradient_noise.sq_norm(grads)
    noise = state.noise
    if measured:
      half = x.shape[1] // 2
      first_half = lambda: gradient(x[0, :half], y[0, :half], 0)[0]
      noise = gradient_noise.measure(state.noise, x.shape[:2], local[0], grads, big,
                                     micro_sq_mean, first_half,
                                     batch_norm=bool(state.batch_stats), decay=self.noise_decay)

    learning_rate = clock.learning_rate(self.schedule, inputs.table, state.step,
                                        inputs.lr_multiplier)
    opt_state = with_learning_rate(state.opt_state, learning_rate)
    updates, opt_state = self.tx.update(grads, opt_state, state.params)
    finite = jnp.isfinite(loss) & jnp.isfinite(big)
    diverged_at = jnp.where((state.diverged_at == 0) & ~finite, state.step + 1, state.diverged_at)
    metrics = MetricSums(state.metrics.loss + loss, state.metrics.accuracy + acc,
                         state.metrics.updates + 1)
    return TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                      batch_stats=batch_stats, opt_state=opt_state, metrics=metrics,
                      diverged_at=diverged_at, noise=noise)


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
