"""The pmap train step: on 8 fake CPU devices it equals one device's step on the same
global batch; on one device, accumulation, fused updates, the seed and the LR as data, no
recompiles, no host-device copies; an all-reduce and no weight copies on one and on 8."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import optax
import pytest

from conftest import ON_ONE_AND_EIGHT_DEVICES
from lr_study.data.in_memory import DeviceData, epoch_permutation
from lr_study.models import build_model
from lr_study.runtime import devices
from lr_study.schedules import build_lr_schedule, clock
from lr_study.optimizers import build_optimizer, with_learning_rate
from lr_study.training.dispatches import dispatch_sizes
from lr_study.training.step import (StepCompiler, StepInputs, cross_entropy_and_accuracy,
                                    init_train_state)

N = 256
SHAPE = (8, 8, 1)
MEAN, STD = np.float32([0.5]), np.float32([0.25])


@dataclasses.dataclass
class _Phase:
  first_update: int = 0
  start_epoch: int = 0
  updates_per_epoch: int = N // 32
  lr_multiplier: float = 1.0
  batch_size: int = 32
  start_offset: int = 0
  epoch_examples: int = N // 32 * 32


def _data() -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(0)
  return (rng.integers(0, 256, (N, *SHAPE), dtype=np.uint8),
          rng.integers(0, 10, N).astype(np.int32))


def _setup(lr_schedule: dict | None = None, dropout: float = 0.0):
  model = build_model({'name': 'mlp', 'widths': (32,), 'dropout': dropout}, 10,
                      ghost_batch_size=0)
  tx = build_optimizer({'name': 'momentum', 'momentum': 0.9, 'weight_decay': 1e-3})
  schedule = build_lr_schedule(lr_schedule or {'name': 'multistep', 'init_value': 0.1,
                                               'boundaries': (0.02,), 'factors': 0.5})
  return model, tx, schedule


def _split(epoch: int = 0, seed: int = 0) -> DeviceData:
  images, labels = _data()
  data = devices.replicate(DeviceData(images, labels, MEAN, STD, np.int32(0),
                                      np.asarray(epoch_permutation(seed, epoch, N))))
  return data.replace(local_device=devices.shard(
      np.arange(jax.local_device_count(), dtype=np.int32)))


def _inputs(global_batch: int, seed: int = 0, lr_multiplier: float = 1.0) -> StepInputs:
  per_epoch = N // global_batch
  table = clock.PhaseTable.from_phases([_Phase(updates_per_epoch=per_epoch, batch_size=global_batch,
                                               epoch_examples=per_epoch * global_batch)], 4)
  return devices.replicate(StepInputs(np.int32(seed), table, np.float32(lr_multiplier)))


def _run(compiler: StepCompiler, per_device: int, accumulation: int, updates: int,
         per_dispatch: int = 1, seed: int = 0):
  model, tx = compiler.model, compiler.tx
  state = devices.replicate(init_train_state(model, tx, seed, SHAPE))
  dispatch = compiler.dispatcher(per_device, accumulation, streaming=False)
  split, inputs = _split(seed=seed), _inputs(per_device * jax.local_device_count(), seed)
  for k in dispatch_sizes(0, updates, 0, per_dispatch, None):  # as the loop
    state = dispatch(state, (split,), inputs, k)
  return devices.unreplicate(state)


@pytest.mark.multidevice
def test_eight_devices_are_visible():
  assert jax.local_device_count() == 8


@pytest.mark.multidevice
def test_pmap_step_matches_single_device_step_on_the_same_global_batch():
  model, tx, schedule = _setup()
  compiler = StepCompiler(model, tx, schedule, augment=False)
  per_device, updates = 4, 6
  global_batch = per_device * 8
  pmapped = _run(compiler, per_device, 1, updates)

  images, labels = _data()
  perm = np.asarray(epoch_permutation(0, 0, N))
  state = init_train_state(model, tx, 0, SHAPE)
  params, opt_state = state.params, state.opt_state

  @jax.jit
  def single_device_step(params, opt_state, x, y, lr):
    grads = jax.grad(lambda p: cross_entropy_and_accuracy(
        model.apply({'params': p}, x, train=True), y)[0].mean())(params)
    updates, opt_state = tx.update(grads, with_learning_rate(opt_state, lr), params)
    return optax.apply_updates(params, updates), opt_state

  for i in range(updates):
    idx = perm[i * global_batch:(i + 1) * global_batch]
    x = (images[idx].astype(np.float32) / 255 - MEAN) / STD
    params, opt_state = single_device_step(params, opt_state, x, labels[idx],
                                           schedule(i / (N // global_batch)))
  for a, b in zip(jax.tree.leaves(pmapped.params), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert int(pmapped.step) == updates


def test_accumulated_micro_batches_match_one_batch_of_k_times_the_size():
  model, tx, schedule = _setup()
  one_batch = _run(StepCompiler(model, tx, schedule, augment=False), 8, 1, 3)
  accumulated = _run(StepCompiler(model, tx, schedule, augment=False), 8, 4, 3)
  for a, b in zip(jax.tree.leaves(one_batch.params), jax.tree.leaves(accumulated.params)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_fused_updates_per_dispatch_equal_one_update_per_dispatch_exactly():
  model, tx, schedule = _setup(dropout=0.2)
  one = _run(StepCompiler(model, tx, schedule, augment=False), 4, 1, 8, per_dispatch=1)
  fused = _run(StepCompiler(model, tx, schedule, augment=False), 4, 1, 8, per_dispatch=4)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(fused)):
    np.testing.assert_array_equal(a, b)


def test_seeds_are_data_one_compile_serves_every_seed():
  model, tx, schedule = _setup(dropout=0.2)
  compiler = StepCompiler(model, tx, schedule, augment=False)
  runs = [_run(compiler, 4, 1, 2, seed=seed) for seed in (0, 1, 2)]
  assert compiler.traces == 1
  assert not np.array_equal(runs[0].params['Dense_0']['kernel'], runs[1].params['Dense_0']['kernel'])


def test_learning_rate_change_is_data_and_does_not_recompile():
  model, tx, schedule = _setup({'name': 'constant', 'init_value': 0.1})
  compiler = StepCompiler(model, tx, schedule, augment=False)
  state = devices.replicate(init_train_state(model, tx, 0, SHAPE))
  dispatch = compiler.dispatcher(4, 1, streaming=False)
  for multiplier, epoch in ((1.0, 0), (0.5, 0), (0.01, 3)):
    state = dispatch(state, (_split(epoch),), _inputs(32, lr_multiplier=multiplier), 1)
    assert float(state.opt_state.hyperparams['learning_rate'][0]) == np.float32(0.1 * multiplier)
  assert compiler.traces == 1


def test_a_new_per_device_batch_compiles_once_more():
  model, tx, schedule = _setup()
  compiler = StepCompiler(model, tx, schedule, augment=False)
  for per_device in (2, 4, 2, 4):
    _run(compiler, per_device, 1, 2)
  assert compiler.traces == 2


def test_train_steps_copy_no_data_between_host_and_devices():
  model, tx, schedule = _setup()
  compiler = StepCompiler(model, tx, schedule, augment=False)
  state = devices.replicate(init_train_state(model, tx, 0, SHAPE))
  split, inputs = _split(), _inputs(32)
  dispatch = compiler.dispatcher(4, 1, streaming=False)
  state = dispatch(state, (split,), inputs, 2)  # compiles (constants may be copied once)
  with jax.transfer_guard('disallow'):
    for _ in range(5):
      state = dispatch(state, (split,), inputs, 2)
    jax.block_until_ready(state)
  assert compiler.traces == 1


def test_a_non_finite_loss_marks_its_first_update():
  model, tx, schedule = _setup({'name': 'constant', 'init_value': 1e6})
  state = _run(StepCompiler(model, tx, schedule, augment=False), 4, 1, 6)
  assert 1 < int(state.diverged_at) <= 6


@ON_ONE_AND_EIGHT_DEVICES
def test_the_step_keeps_each_examples_loss_at_its_last_update(device_count):
  """``example_loss`` holds, at each example's index, its training loss at the update
  that last took it, gathered from every device; the others keep theirs (+inf: unseen)."""
  assert jax.local_device_count() == device_count
  model, tx, schedule = _setup()
  dispatch = StepCompiler(model, tx, schedule, augment=False).dispatcher(16 // device_count, 2,
                                                                          streaming=False)
  split, inputs = _split(), _inputs(16)
  before = dispatch(devices.replicate(init_train_state(model, tx, 0, SHAPE, N)), (split,),
                    inputs, 3)
  params, kept_before = devices.unreplicate(before).params, np.asarray(before.example_loss[0])
  after = devices.unreplicate(dispatch(before, (split,), inputs, 1))

  images, labels = _data()
  perm = np.asarray(epoch_permutation(0, 0, N))
  last = perm[48:64]  # update 4's batch: examples 48..63 of the epoch's order
  logits = model.apply({'params': params}, (images[last] / 255.0 - MEAN) / STD, train=True)
  np.testing.assert_allclose(np.asarray(after.example_loss)[last],
                             cross_entropy_and_accuracy(logits, labels[last])[0], rtol=1e-5)
  others = np.setdiff1d(np.arange(N), last)
  np.testing.assert_array_equal(np.asarray(after.example_loss)[others], kept_before[others])
  assert np.isfinite(kept_before[perm[:48]]).all() and np.isinf(kept_before[perm[48:]]).all()


@ON_ONE_AND_EIGHT_DEVICES
def test_the_step_all_reduces_only_across_several_devices(device_count):
  """Gradients are averaged with an all-reduce on several devices; on one device the step
  has none (XLA:CPU would copy every gradient through it)."""
  assert jax.local_device_count() == device_count
  model, tx, schedule = _setup()
  step = StepCompiler(model, tx, schedule, augment=False).train_step(4, 1)
  state = devices.replicate(init_train_state(model, tx, 0, SHAPE))
  hlo = step.lower(state, _split(), _inputs(4 * jax.local_device_count()),
                   devices.replicate(np.int32(1))).compile().as_text()
  assert ('all-reduce' in hlo) == (jax.local_device_count() > 1)


@pytest.mark.optimized  # the step as a run compiles it
@ON_ONE_AND_EIGHT_DEVICES
def test_the_cpu_step_copies_no_weight_per_update(device_count):
  """On CPU the step is compiled with region-analysis copy insertion: the update loop
  overwrites each weight in place, with no copy of it per update."""
  assert jax.local_device_count() == device_count
  model, tx, schedule = _setup()
  compiler = StepCompiler(model, tx, schedule, augment=False)
  step = compiler.train_step(4, 1)
  host = init_train_state(model, tx, 0, SHAPE)
  jax.block_until_ready(step(devices.replicate(host), _split(),
                             _inputs(4 * jax.local_device_count()), devices.replicate(np.int32(2))))
  weights = {f'f32[{",".join(map(str, w.shape))}]' for w in jax.tree.leaves(host.params)
             if w.ndim == 2}
  copies = [line for line in step.compiled.as_text().splitlines()
            if ' copy(' in line and any(f'= {w}' in line for w in weights)]
  assert weights and not copies, copies
