"""Device-resident epochs: permutations, batch walks, evaluation coverage, normalization."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_study.data import in_memory

N = 1437  # the digits training split
MEAN, STD = np.array([0.5, 0.25, 0.1], np.float32), np.array([0.2, 0.5, 1.0], np.float32)


def _split(n: int, shape=(4, 4, 3)) -> tuple[jax.Array, jax.Array]:
  """Images whose pixels encode the example index mod 256, labels equal to the index."""
  images = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None],
                           (n, *shape))
  return jnp.asarray(images), jnp.arange(n, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=('size', 'augment'))
def _take(images, labels, perm, start, size, augment=False, seed=0, epoch=0):
  return in_memory.take_batch(images, labels, perm, start, size, MEAN, STD,
                              augment=augment, seed=seed, epoch=epoch)


def test_same_seed_and_epoch_give_the_same_permutation():
  a = in_memory.epoch_permutation(3, 7, N)
  b = jax.jit(in_memory.epoch_permutation, static_argnums=2)(3, 7, N)
  assert a.dtype == jnp.int32
  np.testing.assert_array_equal(a, b)
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
  used = np.concatenate([
      np.asarray(_take(images, labels, perm, jnp.int32(i * batch_size), batch_size)[1])
      for i in range(steps)])
  assert len(used) == steps * batch_size
  assert len(np.unique(used)) == len(used)
  # Any batch size cuts the same order: the used examples are the head of the permutation.
  np.testing.assert_array_equal(used, np.asarray(perm)[:steps * batch_size])


def test_pmapped_devices_take_consecutive_slices_of_the_global_batch():
  num_devices, per_device = jax.local_device_count(), 5
  global_batch = num_devices * per_device
  images, labels = _split(N)
  perm = in_memory.epoch_permutation(1, 0, N)

  def device_batch(images, labels, perm, step):
    start = in_memory.batch_start(step, jax.lax.axis_index('d'), per_device, num_devices)
    return in_memory.take_batch(images, labels, perm, start, per_device, MEAN, STD,
                                augment=False, seed=1, epoch=0)[1]

  stacked = lambda x: jnp.broadcast_to(x, (num_devices, *x.shape))
  step_fn = jax.pmap(device_batch, axis_name='d', in_axes=(0, 0, 0, None))
  args = stacked(images), stacked(labels), stacked(perm)
  used = np.concatenate([np.asarray(step_fn(*args, step)).reshape(-1)
                         for step in range(N // global_batch)])
  np.testing.assert_array_equal(used, np.asarray(perm)[:len(used)])


@pytest.mark.parametrize('num_local_devices, per_device', [(1, 8), (2, 3), (4, 5)])
def test_local_devices_read_their_process_share_of_the_epoch_once(num_local_devices, per_device):
  # Whatever the number of processes, a process's devices cut its own permutation into
  # consecutive, disjoint slices: update i, device d reads [i·B_local + d·P, ... + P).
  updates = 7
  read = np.concatenate([
      in_memory.batch_start(i, d, per_device, num_local_devices) + np.arange(per_device)
      for i in range(updates) for d in range(num_local_devices)])
  np.testing.assert_array_equal(read, np.arange(updates * num_local_devices * per_device))


def test_take_batch_normalizes_each_channel():
  images = jnp.asarray(np.random.RandomState(0).randint(0, 256, (10, 4, 4, 3)), jnp.uint8)
  x, y = _take(images, jnp.arange(10, dtype=jnp.int32), jnp.arange(10, dtype=jnp.int32),
               jnp.int32(2), 3)
  expected = (np.asarray(images[2:5], np.float32) / 255.0 - MEAN) / STD
  assert x.dtype == jnp.float32 and y.dtype == jnp.int32
  np.testing.assert_allclose(x, expected, atol=1e-6)
  np.testing.assert_array_equal(y, [2, 3, 4])


def test_take_batch_augments_an_example_alike_whatever_the_batch_size():
  images = jnp.asarray(np.random.RandomState(1).randint(0, 256, (64, 32, 32, 3)), jnp.uint8)
  labels = jnp.arange(64, dtype=jnp.int32)
  perm = in_memory.epoch_permutation(0, 2, 64)
  whole, _ = _take(images, labels, perm, jnp.int32(0), 16, augment=True, seed=0, epoch=2)
  half, _ = _take(images, labels, perm, jnp.int32(8), 8, augment=True, seed=0, epoch=2)
  np.testing.assert_array_equal(whole[8:], half)
  plain, _ = _take(images, labels, perm, jnp.int32(0), 16)
  next_epoch, _ = _take(images, labels, perm, jnp.int32(0), 16, augment=True, seed=0, epoch=3)
  assert not np.array_equal(whole, plain) and not np.array_equal(whole, next_epoch)


def test_a_process_slice_augments_its_examples_as_the_whole_split_does():
  images = jnp.asarray(np.random.RandomState(2).randint(0, 256, (64, 32, 32, 3)), jnp.uint8)
  labels = jnp.arange(64, dtype=jnp.int32)
  everything = jnp.arange(64, dtype=jnp.int32)
  whole, _ = _take(images, labels, everything, jnp.int32(0), 64, augment=True, seed=0, epoch=1)
  # The second of two processes holds examples 32..63 at local positions 0..31.
  local = jnp.arange(32, dtype=jnp.int32)
  second, _ = in_memory.take_batch(images[32:], labels[32:], local, jnp.int32(0), 32, MEAN,
                                   STD, augment=True, seed=0, epoch=1, first_index=32)
  np.testing.assert_allclose(second, whole[32:], atol=1e-6)  # same crops and flips


@pytest.mark.parametrize('num_examples', [1, 360, 10000])
@pytest.mark.parametrize('eval_batch_size', [1, 7, 100, 1000, 20000])
@pytest.mark.parametrize('num_devices', [1, 3, 8])
def test_evaluation_counts_every_example_exactly_once(num_examples, eval_batch_size,
                                                      num_devices):
  idx, mask = in_memory.eval_index_batches(num_examples, eval_batch_size, num_devices)
  per_device = max(1, eval_batch_size // num_devices)
  assert idx.shape == mask.shape == (idx.shape[0], num_devices, per_device)
  assert idx.dtype == np.int32 and mask.dtype == np.float32
  assert idx.shape[0] == in_memory.eval_steps(num_examples, eval_batch_size, num_devices)
  counts = np.bincount(idx.reshape(-1), weights=mask.reshape(-1), minlength=num_examples)
  np.testing.assert_array_equal(counts, np.ones(num_examples))
  assert idx.max() < num_examples
  # Only the last batch is padded.
  assert mask[:-1].all()


def test_evaluation_pads_to_equal_steps_for_every_process():
  idx, mask = in_memory.eval_index_batches(333, 100, 4, num_steps=5)
  assert idx.shape == (5, 4, 25) and mask.sum() == 333 and not mask[4].any()
  with pytest.raises(ValueError, match='needs 4'):
    in_memory.eval_index_batches(333, 100, 4, num_steps=3)


def test_take_eval_batch_gathers_and_normalizes_the_indexed_examples():
  images, labels = _split(20)
  idx = jnp.array([[3, 0], [19, 7]], jnp.int32)
  x, y = jax.jit(in_memory.take_eval_batch)(images, labels, idx, MEAN, STD)
  assert x.shape == (2, 2, 4, 4, 3)
  np.testing.assert_array_equal(y, idx)
  np.testing.assert_allclose(x[1, 0, 0, 0], (19 / 255.0 - MEAN) / STD, rtol=1e-6)
