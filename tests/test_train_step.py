"""The pmap train step on 8 fake CPU devices: equivalence, accumulation, no recompiles."""

from __future__ import annotations

import jax
import numpy as np
import optax

from lr_study.runtime import devices
from lr_study.data.in_memory import epoch_permutation, take_batch
from lr_study.models import build_model
from lr_study.training.optimizers import build_optimizer, with_learning_rate
from lr_study.schedules import build_lr_schedule
from lr_study.training.step import (DeviceData, EpochContext, StepCompiler, cross_entropy_and_accuracy,
                                 epoch_context, init_train_state)

N = 256
SHAPE = (8, 8, 1)
MEAN, STD = np.float32([0.5]), np.float32([0.25])


def _data() -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(0)
  return (rng.integers(0, 256, (N, *SHAPE), dtype=np.uint8),
          rng.integers(0, 10, N).astype(np.int32))


def _setup(lr_schedule: dict | None = None):
  model = build_model({'name': 'mlp', 'widths': (32,)}, 10, ghost_batch_size=0)
  tx = build_optimizer({'name': 'momentum', 'momentum': 0.9, 'weight_decay': 1e-3})
  schedule = build_lr_schedule(lr_schedule or {'name': 'multistep', 'init_value': 0.1,
                                               'boundaries': (0.02,), 'factors': 0.5})
  return model, tx, schedule


def _context(global_batch: int, lr_multiplier: float = 1.0, epoch: int = 0) -> EpochContext:
  return epoch_context(np.asarray(epoch_permutation(0, epoch, N)), epoch, 0, N // global_batch,
                       lr_multiplier)


def _run(compiler: StepCompiler, per_device: int, accumulation: int, updates: int):
  model, tx = compiler.model, compiler.tx
  images, labels = _data()
  state = devices.replicate(init_train_state(model, tx, 0, SHAPE))
  data = devices.replicate(DeviceData(images, labels, MEAN, STD))
  ctx = _context(per_device * jax.local_device_count())
  step = compiler.train_step(per_device, accumulation)
  for _ in range(updates):
    state = step(state, data, ctx)
  return devices.unreplicate(state)


def test_eight_devices_are_visible():
  assert jax.local_device_count() == 8


def test_pmap_step_matches_single_device_step_on_the_same_global_batch():
  model, tx, schedule = _setup()
  compiler = StepCompiler(model, tx, schedule, seed=0, augment=False)
  per_device, updates = 4, 6
  global_batch = per_device * 8
  pmapped = _run(compiler, per_device, 1, updates)

  images, labels = _data()
  perm = epoch_permutation(0, 0, N)
  state = init_train_state(model, tx, 0, SHAPE)
  params, opt_state = state.params, state.opt_state

  @jax.jit
  def single_device_step(params, opt_state, i):
    x, y = take_batch(images, labels, perm, i * global_batch, global_batch, MEAN, STD,
                      augment=False, seed=0, epoch=0)
    grads = jax.grad(lambda p: cross_entropy_and_accuracy(
        model.apply({'params': p}, x, train=True), y)[0].mean())(params)
    lr = schedule(i / (N // global_batch))
    updates, opt_state = tx.update(grads, with_learning_rate(opt_state, lr), params)
    return optax.apply_updates(params, updates), opt_state

  for i in range(updates):
    params, opt_state = single_device_step(params, opt_state, i)
  for a, b in zip(jax.tree.leaves(pmapped.params), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert int(pmapped.step) == updates


def test_accumulated_micro_batches_match_one_batch_of_k_times_the_size():
  model, tx, schedule = _setup()
  one_batch = _run(StepCompiler(model, tx, schedule, seed=0, augment=False), 8, 1, 3)
  accumulated = _run(StepCompiler(model, tx, schedule, seed=0, augment=False), 8, 4, 3)
  for a, b in zip(jax.tree.leaves(one_batch.params), jax.tree.leaves(accumulated.params)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_learning_rate_change_is_data_and_does_not_recompile():
  model, tx, schedule = _setup({'name': 'constant', 'init_value': 0.1})
  compiler = StepCompiler(model, tx, schedule, seed=0, augment=False)
  images, labels = _data()
  state = devices.replicate(init_train_state(model, tx, 0, SHAPE))
  data = devices.replicate(DeviceData(images, labels, MEAN, STD))
  step = compiler.train_step(4, 1)
  for multiplier, epoch in ((1.0, 0), (0.5, 0), (0.01, 3)):
    state = step(state, data, _context(32, multiplier, epoch))
    assert float(state.opt_state.hyperparams['learning_rate'][0]) == np.float32(0.1 * multiplier)
  assert compiler.traces == 1


def test_a_new_per_device_batch_compiles_once_more():
  model, tx, schedule = _setup()
  compiler = StepCompiler(model, tx, schedule, seed=0, augment=False)
  for per_device in (2, 4, 2, 4):
    _run(compiler, per_device, 1, 2)
  assert compiler.traces == 2


def test_train_steps_copy_no_data_between_host_and_devices():
  model, tx, schedule = _setup()
  compiler = StepCompiler(model, tx, schedule, seed=0, augment=False)
  images, labels = _data()
  state = devices.replicate(init_train_state(model, tx, 0, SHAPE))
  data = devices.replicate(DeviceData(images, labels, MEAN, STD))
  ctx = _context(32)
  step = compiler.train_step(4, 1)
  state = step(state, data, ctx)  # compiles (constants may be copied once)
  with jax.transfer_guard('disallow'):
    for _ in range(5):
      state = step(state, data, ctx)
    jax.block_until_ready(state)
  assert compiler.traces == 1
