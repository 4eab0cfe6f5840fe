"""Device-resident epochs: permutations, batch walks, evaluation coverage, normalization."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_study import batching, rng
from lr_study.data import in_memory
from lr_study.runtime import devices

N = 1437  # the digits training split
MEAN, STD = np.array([0.5, 0.25, 0.1], np.float32), np.array([0.2, 0.5, 1.0], np.float32)


def _split(n: int, shape=(4, 4, 3)) -> tuple[jax.Array, jax.Array]:
  """Images whose pixels encode the example index mod 256, labels equal to the index."""
  images = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None],
                           (n, *shape))
  return jnp.asarray(images), jnp.arange(n, dtype=jnp.int32)


def _data(images, labels, perm, local_device=0, first_index=0) -> in_memory.DeviceData:
  return in_memory.DeviceData(images, labels, jnp.asarray(MEAN), jnp.asarray(STD),
                              jnp.int32(first_index), perm, jnp.int32(local_device))


@functools.partial(jax.jit, static_argnames=('per_device', 'accumulation', 'num_local_devices',
                                             'augment'))
def _take(split, position, per_device, accumulation=1, num_local_devices=1, augment=False,
          seed=0, epoch=0):
  """``take_micro_batches`` outside a pmap: ``split.local_device`` names the device."""
  return in_memory.take_micro_batches(split, position, per_device, accumulation,
                                      num_local_devices, augment=augment, seed=seed,
                                      epoch=epoch)


def test_same_seed_and_epoch_give_the_same_permutation():
  a = in_memory.epoch_permutation(3, 7, N)
  b = in_memory.epoch_permutation(np.int32(3), np.int64(7), N)
  assert a.dtype == np.int32
  np.testing.assert_array_equal(a, b)
  # The order is drawn with the data_order stream of lr_study.rng.
  np.testing.assert_array_equal(a, rng.data_order(3, 7).permutation(N))
  np.testing.assert_array_equal(np.sort(a), np.arange(N))


def test_different_epochs_and_seeds_give_different_permutations():
  perms = [np.asarray(in_memory.epoch_permutation(seed, epoch, N))
           for seed, epoch in ((0, 0), (0, 1), (0, 2), (1, 0))]
  for i in range(len(perms)):
    for j in range(i):
      assert (perms[i] != perms[j]).mean() > 0.9


@pytest.mark.parametrize('batch_size', [1, 7, 64, 100, 1000, 1437])
def test_epoch_uses_each_example_at_most_once_and_floor_n_over_b_batches(batch_size):
  images, labels = _split(N)
  perm = in_memory.epoch_permutation(0, 4, N)
  steps = N // batch_size
  split = _data(images, labels, perm)
  take = lambda i: _take(split, i * batch_size, batch_size)[1]
  used = np.asarray(jax.vmap(take)(jnp.arange(steps, dtype=jnp.int32))).reshape(-1)
  assert len(used) == steps * batch_size
  assert len(np.unique(used)) == len(used)
  # Any batch size cuts the same order: the used examples are the head of the permutation.
  np.testing.assert_array_equal(used, np.asarray(perm)[:steps * batch_size])


def test_a_batch_starts_at_any_example_of_the_order():
  # A batch ramp's update may start anywhere in the epoch: position 5, batch 3.
  images, labels = _split(N)
  perm = in_memory.epoch_permutation(0, 1, N)
  y = _take(_data(images, labels, perm), jnp.int32(5), 3)[1]
  np.testing.assert_array_equal(y[0], np.asarray(labels)[np.asarray(perm)[5:8]])


def _pmapped_take(per_device: int, accumulation: int, perm: jax.Array):
  """(step_fn, split): the labels of every local device's micro-batches of an update,
  [devices, accumulation, m], read inside a pmap as the train step reads them."""
  num_devices = jax.local_device_count()
  images, labels = _split(N)
  split = devices.replicate(in_memory.DeviceData(images, labels, MEAN, STD, np.int32(0), perm))
  split = split.replace(local_device=devices.shard(np.arange(num_devices, dtype=np.int32)))

  def device_batch(split, position):
    return in_memory.take_micro_batches(split, position, per_device, accumulation,
                                        num_devices, augment=False, seed=1, epoch=0)[1]

  return jax.pmap(device_batch, axis_name=devices.AXIS, in_axes=(0, None)), split


@pytest.mark.multidevice
def test_pmapped_devices_take_consecutive_slices_of_the_global_batch():
  num_devices, per_device = jax.local_device_count(), 5
  global_batch = num_devices * per_device
  perm = in_memory.epoch_permutation(1, 0, N)
  step_fn, split = _pmapped_take(per_device, 1, perm)
  used = np.concatenate([np.asarray(step_fn(split, jnp.int32(step * global_batch))).reshape(-1)
                         for step in range(N // global_batch)])
  np.testing.assert_array_equal(used, np.asarray(perm)[:len(used)])


@pytest.mark.multidevice
def test_micro_batches_are_consecutive_slices_of_the_global_batch():
  # 8 devices, 6 examples each as 3 micro-batches of m = 2: a global batch of 48 whose
  # micro-batch j is positions [16j, 16j + 16), device d reading 16j + 2d and 16j + 2d + 1.
  num_devices = jax.local_device_count()
  assert num_devices == 8
  step_fn, split = _pmapped_take(6, 3, jnp.arange(N, dtype=jnp.int32))
  y = np.asarray(step_fn(split, jnp.int32(48)))  # update 1: positions 48..95
  assert y.shape == (8, 3, 2)
  np.testing.assert_array_equal(y[1, 2], [82, 83])  # 48 + 2·16 + 1·2
  np.testing.assert_array_equal(y[0, 0], [48, 49])
  np.testing.assert_array_equal(y[7, 2], [94, 95])
  for j in range(3):
    np.testing.assert_array_equal(y[:, j].reshape(-1), np.arange(48 + 16 * j, 64 + 16 * j))
  # Through a permutation: perm[i·B + j·D·m + d·m + r].
  perm = in_memory.epoch_permutation(2, 5, N)
  step_fn, split = _pmapped_take(6, 3, perm)
  y = np.asarray(step_fn(split, jnp.int32(4 * 48)))
  i, d, j, r = np.meshgrid(4, np.arange(8), np.arange(3), np.arange(2), indexing='ij')
  np.testing.assert_array_equal(y, np.asarray(perm)[i * 48 + j * 16 + d * 2 + r][0])


@pytest.mark.parametrize('num_local_devices, per_device, accumulation',
                         [(1, 8, 1), (2, 3, 1), (4, 5, 1), (2, 6, 3), (4, 4, 2)])
def test_local_devices_read_their_process_share_of_the_epoch_once(num_local_devices, per_device,
                                                                   accumulation):
  # Whatever the number of processes, a process's devices cut its own permutation into
  # consecutive, disjoint slices: update i, micro-batch j, device d reads
  # [i·B_local + j·D·m + d·m, ... + m).
  updates = 7
  n = updates * num_local_devices * per_device
  images, labels = _split(n)
  identity = jnp.arange(n, dtype=jnp.int32)
  reads = [[np.asarray(_take(_data(images, labels, identity, local_device=d),
                             jnp.int32(i * num_local_devices * per_device),
                             per_device, accumulation, num_local_devices)[1])
            for d in range(num_local_devices)] for i in range(updates)]
  read = np.concatenate([reads[i][d][j] for i in range(updates) for j in range(accumulation)
                         for d in range(num_local_devices)])
  np.testing.assert_array_equal(read, np.arange(n))


def test_take_micro_batches_normalizes_each_channel():
  images = jnp.asarray(np.random.RandomState(0).randint(0, 256, (10, 4, 4, 3)), jnp.uint8)
  perm = jnp.asarray((np.arange(10) + 9) % 10, jnp.int32)  # perm[3:6] = 2, 3, 4
  x, y = _take(_data(images, jnp.arange(10, dtype=jnp.int32), perm), jnp.int32(3), 3)
  expected = (np.asarray(images[2:5], np.float32) / 255.0 - MEAN) / STD
  assert x.dtype == jnp.float32 and y.dtype == jnp.int32
  assert x.shape == (1, 3, 4, 4, 3) and y.shape == (1, 3)
  np.testing.assert_allclose(x[0], expected, atol=1e-6)
  np.testing.assert_array_equal(y[0], [2, 3, 4])


def test_take_micro_batches_augments_an_example_alike_whatever_the_batch_size():
  images = jnp.asarray(np.random.RandomState(1).randint(0, 256, (64, 32, 32, 3)), jnp.uint8)
  labels = jnp.arange(64, dtype=jnp.int32)
  split = _data(images, labels, in_memory.epoch_permutation(0, 2, 64))
  whole, _ = _take(split, jnp.int32(0), 16, augment=True, seed=0, epoch=2)
  half, _ = _take(split, jnp.int32(8), 8, augment=True, seed=0, epoch=2)  # perm[8:16]
  np.testing.assert_array_equal(whole[0, 8:], half[0])
  # ... and whatever the accumulation: micro-batch 1 of 2 is perm[8:16] too.
  accumulated, _ = _take(split, jnp.int32(0), 16, 2, augment=True, seed=0, epoch=2)
  np.testing.assert_array_equal(accumulated[1], half[0])
  plain, _ = _take(split, jnp.int32(0), 16)
  next_epoch, _ = _take(split, jnp.int32(0), 16, augment=True, seed=0, epoch=3)
  assert not np.array_equal(whole, plain) and not np.array_equal(whole, next_epoch)


def test_a_process_slice_augments_its_examples_as_the_whole_split_does():
  images = jnp.asarray(np.random.RandomState(2).randint(0, 256, (64, 32, 32, 3)), jnp.uint8)
  labels = jnp.arange(64, dtype=jnp.int32)
  everything = jnp.arange(64, dtype=jnp.int32)
  whole, _ = _take(_data(images, labels, everything), jnp.int32(0), 64, augment=True, seed=0,
                   epoch=1)
  # The second of two processes holds examples 32..63 at local positions 0..31.
  local = jnp.arange(32, dtype=jnp.int32)
  second, y = _take(_data(images[32:], labels[32:], local, first_index=32), jnp.int32(0), 32,
                    augment=True, seed=0, epoch=1)
  np.testing.assert_array_equal(y[0], np.arange(32, 64))
  np.testing.assert_allclose(second[0], whole[0, 32:], atol=1e-6)  # same crops and flips


@pytest.mark.parametrize('num_examples', [1, 360, 10000])
@pytest.mark.parametrize('per_device', [1, 7, 100, 1000, 2500])
@pytest.mark.parametrize('num_devices', [1, 3, 8])
def test_evaluation_counts_every_example_exactly_once(num_examples, per_device, num_devices):
  layout = batching.eval_layout(num_examples, per_device * num_devices, num_devices)
  idx, mask = in_memory.eval_index_batches(num_examples, layout)
  assert idx.shape == mask.shape == layout
  assert idx.dtype == np.int32 and mask.dtype == np.float32
  counts = np.bincount(idx.reshape(-1), weights=mask.reshape(-1), minlength=num_examples)
  np.testing.assert_array_equal(counts, np.ones(num_examples))
  assert idx.max() < num_examples
  # Only the last batch is padded.
  assert mask[:-1].all()


def test_evaluation_pads_to_equal_steps_for_every_process():
  idx, mask = in_memory.eval_index_batches(333, batching.EvalLayout(5, 4, 25))
  assert idx.shape == (5, 4, 25) and mask.sum() == 333 and not mask[4].any()
  with pytest.raises(ValueError, match='cannot cover 333 examples'):
    in_memory.eval_index_batches(333, batching.EvalLayout(3, 4, 25))


def test_take_eval_batch_gathers_and_normalizes_the_indexed_examples():
  images, labels = _split(20)
  idx = jnp.array([[3, 0], [19, 7]], jnp.int32)
  x, y = jax.jit(in_memory.take_eval_batch)(images, labels, idx, MEAN, STD)
  assert x.shape == (2, 2, 4, 4, 3)
  np.testing.assert_array_equal(y, idx)
  np.testing.assert_allclose(x[1, 0, 0, 0], (19 / 255.0 - MEAN) / STD, rtol=1e-6)
