"""The timed functions: the data side, the train step, the dispatch floor, streaming."""

from __future__ import annotations

import argparse
import functools
import re
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np

from lr_study.data.feeds import InMemoryFeed
from lr_study.data.in_memory import DeviceData, take_micro_batches
from lr_study.data.sources import DatasetArrays, SplitArrays
from lr_study.data.specs import DatasetSpec
from lr_study.data.streaming import epoch_batches
from lr_study.models import build_model
from lr_study.optimizers import build_optimizer
from lr_study.runtime import devices
from lr_study.schedules import build_lr_schedule, clock
from lr_study.training.loop import max_in_flight
from lr_study.training.step import StepCompiler, StepInputs, init_train_state

MODEL = {'name': 'mlp', 'widths': (256, 256)}
OPTIMIZER = {'name': 'momentum', 'momentum': 0.9}
LR_SCHEDULE = {'name': 'constant', 'init_value': 0.1}
SEED = 0

Context = tuple[DeviceData, StepInputs]  # an epoch's data (split + permutation), step inputs
Stepper = Callable[[Any, Context, int], Any]  # (carry, context, updates) -> next carry


def synthetic_arrays(spec: DatasetSpec) -> DatasetArrays:
  """Random uint8 images and labels with the sizes and shapes of ``spec``."""
  rng = np.random.default_rng(SEED)

  def split(n: int) -> SplitArrays:
    return SplitArrays(rng.integers(0, 256, (n, *spec.image_shape), dtype=np.uint8),
                       rng.integers(0, spec.num_classes, n).astype(np.int32))

  return DatasetArrays(spec, split(spec.num_train_examples), split(spec.num_test_examples))


def epoch_context(feed: InMemoryFeed, epoch: int, first_update: int, updates_per_epoch: int,
                  batch_size: int) -> Context:
  """Epoch ``epoch``'s data from ``InMemoryFeed.ordered`` and step inputs whose one-phase
  table starts that epoch at update ``first_update``."""
  split = feed.ordered(SEED, epoch)
  column = lambda value, dtype=np.int32: np.array([value], dtype)
  table = clock.PhaseTable(first_update=column(first_update), start_epoch=column(epoch),
                           updates_per_epoch=column(updates_per_epoch),
                           batch_size=column(batch_size), lr_multiplier=column(1.0, np.float32),
                           start_offset=column(0),
                           epoch_examples=column(updates_per_epoch * batch_size))
  return split, devices.replicate(StepInputs(seed=np.int32(SEED), table=table,
                                             lr_multiplier=np.float32(1.0)))


def _batch(update: jax.Array, split: DeviceData, inputs: StepInputs, per_device_batch: int,
           flat: bool) -> tuple[jax.Array, jax.Array]:
  """The batch the train step reads at ``update``: images as flat rows [P, H·W·C] when
  ``flat``, else [P, H, W, C]."""
  epoch, position = clock.epoch_and_position(inputs.table, update)
  x, y = take_micro_batches(split, position, per_device_batch, 1, jax.local_device_count(),
                            augment=False, seed=inputs.seed, epoch=epoch)
  x, y = x[0], y[0]
  return (x.reshape(per_device_batch, -1) if flat else x), y


def _gather_normalize(update: jax.Array, split: DeviceData, inputs: StepInputs, *,
                      per_device_batch: int, flat: bool
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(a): one update's data side; returns the next counter and the whole batch."""
  return (update + 1, *_batch(update, split, inputs, per_device_batch, flat))


def _gather_normalize_fused(carry: tuple[jax.Array, jax.Array, jax.Array], split: DeviceData,
                            inputs: StepInputs, num_updates: jax.Array, *,
                            per_device_batch: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(a_K): ``num_updates`` data sides in one call, each batch overwriting the last."""

  def one(_, carry):
    update = carry[0]
    return (update + 1, *_batch(update, split, inputs, per_device_batch, flat=True))

  return jax.lax.fori_loop(0, num_updates, one, carry)


def _advance(update: jax.Array, split: DeviceData, inputs: StepInputs) -> jax.Array:
  """The dispatch floor: the same pmapped inputs, only the update counter advanced."""
  del split, inputs
  return update + 1


def _run_steps(stepper: Stepper, carry: Any, ctx: Context, updates: int, per_call: int) -> Any:
  """``updates`` updates in calls of at most ``per_call``, dispatched back to back and
  blocked where the training loop blocks."""
  sync = max_in_flight()
  while updates > 0:
    k = min(per_call, updates)
    carry = stepper(carry, ctx, k)
    updates -= k
    if sync:
      jax.block_until_ready(carry)
  return jax.block_until_ready(carry)


def time_interleaved(steppers: dict[str, tuple[Stepper, Any, int]], warmup_ctx: Context,
                     contexts: Sequence[Context], warmup: int, steps: int
                     ) -> dict[str, list[float]]:
  """µs per update of each stepper (with its initial carry and updates per call) in each
  repetition; within a repetition, one context, the steppers take turns."""
  carries = {name: _run_steps(stepper, carry, warmup_ctx, warmup, per_call)
             for name, (stepper, carry, per_call) in steppers.items()}
  times: dict[str, list[float]] = {name: [] for name in steppers}
  for ctx in contexts:
    for name, (stepper, _, per_call) in steppers.items():
      start = time.perf_counter()
      carries[name] = _run_steps(stepper, carries[name], ctx, steps, per_call)
      times[name].append((time.perf_counter() - start) / steps * 1e6)
  return times


def time_streaming(dataset_cfg: ml_collections.ConfigDict, global_batch: int, warmup: int,
                   steps: int, repeats: int) -> list[float]:
  """Batches per second of each repetition, a fresh epoch of ``epoch_batches`` each; the
  first ``warmup`` batches (the shuffle buffer filling) are not timed."""
  rates = []
  for epoch in range(repeats):
    batches = epoch_batches(dataset_cfg, 'train', SEED, epoch, global_batch,
                            jax.local_device_count())
    for _ in range(warmup):
      batch = next(batches)
    jax.block_until_ready(batch)
    start = time.perf_counter()
    for _ in range(steps):
      batch = next(batches)
    jax.block_until_ready(batch)
    rates.append(steps / (time.perf_counter() - start))
  return rates


def first_batch(train: SplitArrays, perm: np.ndarray, num_devices: int, per_device: int
                ) -> dict[str, jax.Array]:
  """A global batch on the devices, laid out as ``epoch_batches`` yields it."""
  index = np.arange(num_devices * per_device, dtype=np.int32).reshape(num_devices, per_device)
  return devices.shard({'image': train.images[perm[index]], 'label': train.labels[perm[index]],
                        'index': index})


def uint8_gathers(step_fn: Any, *args: Any) -> list[str]:
  """The shapes the compiled ``step_fn(*args)`` gathers uint8 data in, e.g. ``u8[128,1,784]``."""
  hlo = step_fn.lower(*args).compile().as_text()
  return sorted(set(re.findall(r'(u8\[[\d,]*\])\{[^}]*\} gather\(', hlo)))


def time_in_memory(args: argparse.Namespace, arrays: DatasetArrays, feed: InMemoryFeed,
                   per_device: int) -> tuple[dict[str, list[float]], list[str]]:
  """µs per update, each repetition, of (a), (a′), the dispatch floor, (b), (b′), (a_K)
  and (b_K); and the train step's ``uint8_gathers``."""
  spec, num_devices = arrays.spec, jax.local_device_count()
  updates_per_epoch = feed.num_local_train // args.batch_size
  context = functools.partial(epoch_context, feed, updates_per_epoch=updates_per_epoch,
                              batch_size=args.batch_size)
  pmap = functools.partial(jax.pmap, axis_name=devices.AXIS)
  data_fns = {flat: pmap(functools.partial(_gather_normalize, per_device_batch=per_device,
                                           flat=flat)) for flat in (True, False)}
  fused_data_fn = pmap(functools.partial(_gather_normalize_fused, per_device_batch=per_device))
  floor_fn = pmap(_advance)
  model = build_model(MODEL, spec.num_classes, 0, axis_name=devices.AXIS)
  tx = build_optimizer(OPTIMIZER)
  compiler = StepCompiler(model, tx, build_lr_schedule(LR_SCHEDULE), augment=False,
                          mean=spec.mean, std=spec.std)
  train_step = compiler.train_step(per_device, 1)
  fixed_step = compiler.train_step(per_device, 1, streaming=True)
  perm = np.asarray(jax.device_get(context(0, 0)[0].perm))[0]
  batch = first_batch(arrays.train, perm, num_devices, per_device)
  state = lambda: devices.replicate(init_train_state(model, tx, SEED, spec.image_shape))
  count = functools.cache(lambda k: devices.replicate(np.int32(k)))
  per_call = min(args.updates_per_dispatch, max_in_flight() or args.updates_per_dispatch)
  counter = devices.replicate(np.int32(0))
  rows = np.zeros((num_devices, per_device, int(np.prod(spec.image_shape))), np.float32)
  labels = np.zeros((num_devices, per_device), np.int32)
  # A data side's carry is its output (counter, x, y); the next call reads the counter.
  steppers: dict[str, tuple[Stepper, Any, int]] = {
      'data_side_us': (lambda out, ctx, k: data_fns[True](out[0], *ctx), (counter,), 1),
      'data_side_images_us': (lambda out, ctx, k: data_fns[False](out[0], *ctx), (counter,), 1),
      'dispatch_floor_us': (lambda step, ctx, k: floor_fn(step, *ctx), counter, 1),
      'train_step_us': (lambda st, ctx, k: train_step(st, *ctx, count(k)), state(), 1),
      'fixed_batch_step_us': (lambda st, ctx, k: fixed_step(st, batch, ctx[1]), state(), 1),
      'fused_data_side_us': (lambda out, ctx, k: fused_data_fn(out, *ctx, count(k)),
                             (counter, devices.shard(rows), devices.shard(labels)), per_call),
      'fused_train_step_us': (lambda st, ctx, k: train_step(st, *ctx, count(k)), state(),
                              per_call),
  }
  gathers = uint8_gathers(train_step, steppers['train_step_us'][1], *context(0, 0), count(1))
  # Epoch 0 warms up; repetition r is epoch r + 1 and starts at update warmup + r·steps.
  return time_interleaved(
      steppers, context(0, 0),
      [context(r + 1, args.warmup + r * args.steps) for r in range(args.repeats)],
      args.warmup, args.steps), gathers
