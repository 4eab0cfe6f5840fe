"""The two ways the training loop gets its data: a feed per data mode.

* :class:`InMemoryFeed` (``mode='in_memory'``, the default): every split is copied to
  every device once, as uint8. Each epoch's permutation, a function of ``(seed, epoch)``,
  is drawn on the host and copied to the devices; the train step gathers its own batches
  from it
  (``in_memory.take_micro_batches``), so nothing crosses from host to device per update;
  each evaluation is one pmapped call over the whole split.
* :class:`StreamingFeed` (``mode='streaming'``): for datasets too big for the
  accelerator. tf.data reads TFDS, batches at the phase's batch size and prefetches to the
  devices (``lr_study.data.streaming``); evaluation streams each split in padded, masked
  batches.

The loop asks a feed for ``epoch(seed, epoch, phase, updates, done)``, an iterable of
``(step arguments, updates)`` for the phase's ``updates`` in the epoch after the first
``done`` (a run resumed mid-epoch): one item in memory (the step runs the updates
itself, each at its place in the epoch), one per batch when streaming, laid out in the
phase's micro-batches. ``lr_study.training.evaluate`` reads the evaluation splits a feed
holds or streams.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Iterator

import jax
import ml_collections
import numpy as np

from lr_study import batching
from lr_study.data import streaming
from lr_study.data.in_memory import DeviceData, epoch_permutation, eval_index_batches
from lr_study.data.sources import DatasetArrays, DatasetSpec, load_dataset_arrays, prepare_dataset
from lr_study.plan import Phase
from lr_study.runtime import devices


def _device_data(spec: DatasetSpec, images: np.ndarray, labels: np.ndarray,
                 first_index: int = 0) -> DeviceData:
  data = devices.replicate(DeviceData(images=images, labels=labels.astype(np.int32),
                                      mean=np.asarray(spec.mean, np.float32),
                                      std=np.asarray(spec.std, np.float32),
                                      first_index=np.int32(first_index)))
  return data.replace(local_device=devices.shard(
      np.arange(jax.local_device_count(), dtype=np.int32)))


@dataclasses.dataclass
class _EvalSplit:
  data: DeviceData
  idx: jax.Array  # [devices, steps, per_device]
  mask: jax.Array


class InMemoryFeed:
  """The dataset resident on every local device for the whole study."""

  streaming = False

  def __init__(self, arrays: DatasetArrays, spec: DatasetSpec, eval_batch_size: int):
    # Process p holds training examples [p·n, (p + 1)·n) (sources.process_split).
    self.train = _device_data(spec, arrays.train.images, arrays.train.labels,
                              arrays.process_index * len(arrays.train.labels))
    self.num_local_train = len(arrays.train.labels)
    self._order: tuple[Any, Any] = (None, None)  # ((seed, epoch), the split in that order)
    splits = (('test', arrays.test, spec.num_test_examples),
              ('validation', arrays.validation, spec.num_validation_examples))
    self.eval_splits = {name: self._eval_split(spec, split, total, arrays.process_count,
                                               eval_batch_size)
                        for name, split, total in splits if split}

  @staticmethod
  def _eval_split(spec: DatasetSpec, split: Any, total: int, process_count: int,
                  eval_batch_size: int) -> _EvalSplit:
    """The process's slice of a split (``total`` examples over all processes), in as many
    evaluation steps as every other process, so the pmapped collectives line up."""
    layout = batching.eval_layout(total, eval_batch_size, jax.local_device_count(),
                                  process_count)
    idx, mask = eval_index_batches(len(split.labels), layout)
    # [steps, devices, per_device] -> [devices, steps, per_device] for the pmap.
    return _EvalSplit(_device_data(spec, split.images, split.labels),
                      devices.shard(np.swapaxes(idx, 0, 1)), devices.shard(np.swapaxes(mask, 0, 1)))

  def epoch(self, seed: int, epoch: int, phase: Phase, updates: int, done: int = 0
            ) -> Iterator[tuple[tuple[Any, ...], int]]:
    """The training split with epoch ``epoch``'s order, made on the host and copied to
    the devices once per epoch (a batch ramp's epoch asks once per phase); the step
    gathers each update's batch from it."""
    del phase
    yield (self.ordered(seed, epoch),), updates - done

  def ordered(self, seed: int, epoch: int) -> DeviceData:
    """The training split with epoch ``epoch``'s order as ``perm``, copied to the devices
    once for consecutive calls with the same ``(seed, epoch)``."""
    if self._order[0] != (seed, epoch):
      self._order = ((seed, epoch), self.train.replace(perm=devices.replicate(
          epoch_permutation(seed, epoch, self.num_local_train))))
    return self._order[1]


class StreamingFeed:
  """Batches streamed from TFDS through tf.data, prefetched to the devices."""

  streaming = True

  def __init__(self, dataset_cfg: ml_collections.ConfigDict, spec: DatasetSpec):
    prepare_dataset(dataset_cfg)
    self.dataset_cfg, self.spec = dataset_cfg, spec
    self.eval_split_names = ['test'] + (['validation'] if dataset_cfg.validation_size else [])

  def epoch(self, seed: int, epoch: int, phase: Phase, updates: int, done: int = 0
            ) -> Iterator[tuple[tuple[Any, ...], int]]:
    """One epoch of batches, each one update, in the phase's micro-batches; tf.data
    orders them from (seed, epoch)."""
    batches = streaming.epoch_batches(self.dataset_cfg, 'train', seed, epoch,
                                      phase.batch_size, jax.local_device_count(),
                                      accumulation_steps=phase.accumulation_steps)
    for batch in itertools.islice(batches, done, updates):
      yield (batch,), 1


Feed = InMemoryFeed | StreamingFeed


def load_feed(dataset_cfg: ml_collections.ConfigDict, spec: DatasetSpec) -> Feed:
  """The data of a study in its configured mode, read once."""
  if dataset_cfg.mode == 'streaming':
    return StreamingFeed(dataset_cfg, spec)
  return InMemoryFeed(load_dataset_arrays(dataset_cfg), spec, dataset_cfg.eval_batch_size)
