"""Streaming mode on the digits dataset: batch counts, layout, determinism, evaluation."""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_study.data import in_memory, streaming
from lr_study.data.sources import load_dataset_arrays
from lr_study.runtime.devices import AXIS
from lr_study.errors import ConfigError
from lr_study.config import dataset_defaults

DEVICES = 8  # a layout of 8 devices; only the pmapped step runs on them (multidevice)


@pytest.fixture(scope='module')
def cfg(digits_data_dir):  # pylint: disable=redefined-outer-name
  return dataset_defaults(data_dir=digits_data_dir, mode='streaming')


def _epoch(cfg, seed, epoch, batch, accumulation=1):  # pylint: disable=redefined-outer-name
  return list(streaming.epoch_batches(cfg, 'train', seed, epoch, batch, DEVICES,
                                      accumulation_steps=accumulation, process_index=0,
                                      process_count=1))


def _examples(batches) -> list[bytes]:
  """Each example's image bytes and label, in stream order."""
  images = np.concatenate([np.asarray(b['image']).reshape(-1, 64) for b in batches])
  labels = np.concatenate([np.asarray(b['label']).reshape(-1) for b in batches])
  return [image.tobytes() + bytes([label]) for image, label in zip(images, labels)]


def test_epoch_has_floor_n_over_b_batches_laid_out_for_the_devices(cfg):
  for batch in (64, 200):
    batches = _epoch(cfg, 0, 0, batch)
    assert len(batches) == 1437 // batch
    first = batches[0]
    assert first['image'].shape == (DEVICES, batch // DEVICES, 8, 8, 1)
    assert first['image'].dtype == np.uint8 and first['label'].dtype == np.int32
    assert first['label'].shape == first['index'].shape == (DEVICES, batch // DEVICES)
    np.testing.assert_array_equal(np.asarray(first['index']).reshape(-1), np.arange(batch))


def test_processes_stream_their_share_of_the_batch_with_distinct_indices(cfg):
  # Process p of 2 gets half of each global batch; its k-th example is stream index 2k + p.
  for process in (0, 1):
    batches = list(streaming.epoch_batches(cfg, 'train', 0, 0, 64, DEVICES,
                                           process_index=process, process_count=2))
    assert len(batches) == 1437 // 64 and batches[0]['image'].shape[:2] == (DEVICES, 4)
    np.testing.assert_array_equal(np.asarray(batches[1]['index']).reshape(-1),
                                  2 * np.arange(32, 64) + process)


def test_epoch_uses_each_training_example_at_most_once(cfg):
  train = load_dataset_arrays(cfg, process_index=0, process_count=1).train
  available = collections.Counter(
      image.tobytes() + bytes([label]) for image, label in zip(
          train.images.reshape(-1, 64), train.labels))
  used = collections.Counter(_examples(_epoch(cfg, 0, 0, 64)))
  assert sum(used.values()) == (1437 // 64) * 64
  assert not used - available


def test_same_seed_and_epoch_give_the_same_batches_and_other_epochs_others(cfg):
  first = _examples(_epoch(cfg, 5, 1, 64))
  assert _examples(_epoch(cfg, 5, 1, 64)) == first
  assert _examples(_epoch(cfg, 5, 2, 64)) != first
  assert _examples(_epoch(cfg, 6, 1, 64)) != first


def test_changing_the_batch_size_keeps_the_order_of_examples(cfg):
  small = _examples(_epoch(cfg, 0, 3, 64))  # 22 batches, 1408 examples
  large = _examples(_epoch(cfg, 0, 3, 704))  # 2 batches, 1408 examples
  assert small == large


def test_streamed_micro_batches_hold_the_examples_the_in_memory_feed_puts_there(cfg):
  # 8 devices, 6 examples each as 3 micro-batches of 2: the in-memory feed, reading the
  # streamed epoch as its order, gathers each device's micro-batches from the same places.
  batches = _epoch(cfg, 2, 1, 48, accumulation=3)
  images = np.concatenate([np.asarray(b['image']).reshape(-1, 8, 8, 1) for b in batches])
  index = np.concatenate([np.asarray(b['index']).reshape(-1) for b in batches])
  order = np.argsort(index)  # the stream's examples, in stream order
  split = in_memory.DeviceData(images[order], index[order], np.zeros(1, np.float32),
                               np.full(1, 1 / 255, np.float32),
                               perm=jnp.arange(len(index), dtype=jnp.int32))
  take = jax.jit(in_memory.take_micro_batches, static_argnums=(2, 3, 4),
                 static_argnames='augment')
  for update, batch in enumerate(batches):
    for device in range(DEVICES):
      x, y = take(split.replace(local_device=device), update * 48, 6, 3, DEVICES,
                  augment=False, seed=0, epoch=1)
      np.testing.assert_array_equal(y, np.asarray(batch['index'][device]).reshape(3, 2))
      np.testing.assert_array_equal(x, np.asarray(batch['image'][device]).reshape(3, 2, 8, 8, 1))
  # Micro-batch j of update i is stream positions [48i + 16j, 48i + 16j + 16).
  micro = np.stack([np.asarray(b['index']).reshape(DEVICES, 3, 2).swapaxes(0, 1).reshape(3, 16)
                    for b in batches])
  np.testing.assert_array_equal(micro.reshape(-1), np.arange(len(batches) * 48))


def test_global_batch_not_divisible_by_the_devices_is_a_config_error(cfg):
  with pytest.raises(ConfigError, match='^per-process batch 100 does not divide over 8 devices$'):
    _epoch(cfg, 0, 0, 100)


def test_eval_batches_count_every_test_example_exactly_once(cfg):
  test = load_dataset_arrays(cfg, process_index=0, process_count=1).test
  for eval_batch_size in (8, 96, 1000):
    batches = list(streaming.eval_batches(cfg, 'test', eval_batch_size, DEVICES,
                                          process_index=0, process_count=1))
    per_device = eval_batch_size // DEVICES
    assert len(batches) == -(-360 // (per_device * DEVICES))
    mask = np.concatenate([np.asarray(b['mask']).reshape(-1) for b in batches]).astype(bool)
    images = np.concatenate([np.asarray(b['image']).reshape(-1, 8, 8, 1) for b in batches])
    np.testing.assert_array_equal(images[mask], test.images)
    assert not images[~mask].any()


@pytest.mark.multidevice
def test_streamed_batches_feed_a_pmapped_step(cfg):
  step = jax.pmap(lambda b: jax.lax.psum(b['label'].sum(), AXIS), axis_name=AXIS)
  batches = _epoch(cfg, 0, 0, 128)
  total = sum(int(step(b)[0]) for b in batches)
  assert total == sum(int(np.asarray(b['label']).sum()) for b in batches)
