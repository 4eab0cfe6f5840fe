"""Named random streams: no key of one stream equals a key of another, for a sample of
seeds, epochs, updates, devices, micro-batches and examples; the data orders differ."""

from __future__ import annotations

import itertools

import jax
import numpy as np

from lr_study import rng

SEEDS, EPOCHS, UPDATES = (0, 1, 7), (0, 1, 5), (0, 1, 179)
DEVICES, MICRO, EXAMPLES = (0, 1, 7), (0, 1), (0, 1, 1436)


def _keys() -> dict[tuple, np.ndarray]:
  keys = {}
  for seed in SEEDS:
    keys[('params', seed)] = rng.params_key(seed)
    for epoch in EPOCHS:
      for example in EXAMPLES:
        keys[('augment', seed, epoch, example)] = rng.augment_key(seed, epoch, example)
    for update, device, micro in itertools.product(UPDATES, DEVICES, MICRO):
      keys[('dropout', seed, update, device, micro)] = rng.dropout_key(seed, update, device, micro)
  return {name: np.asarray(key).tobytes() for name, key in keys.items()}


def test_keys_of_every_stream_and_index_are_distinct():
  keys = _keys()
  assert len(set(keys.values())) == len(keys)


def test_data_orders_of_every_seed_and_epoch_are_distinct():
  orders = {(seed, epoch): rng.data_order(seed, epoch).permutation(1437).tobytes()
            for seed in SEEDS for epoch in EPOCHS}
  assert len(set(orders.values())) == len(orders)


def test_the_old_collision_is_gone():
  # Before the named streams, dropout(update s, device 1, micro 0) was the augmentation
  # key of example 0 in epoch s.
  for s in (0, 3):
    dropout = np.asarray(rng.dropout_key(0, s, 1, 0))
    augment = np.asarray(rng.augment_key(0, s, 0))
    assert not np.array_equal(dropout, augment)


def test_a_traced_seed_gives_the_keys_of_the_python_seed():
  traced = jax.jit(rng.dropout_key)(np.int32(3), np.int32(5), np.int32(1), np.int32(0))
  np.testing.assert_array_equal(traced, rng.dropout_key(3, 5, 1, 0))
