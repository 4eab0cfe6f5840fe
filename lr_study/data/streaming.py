"""Streaming mode: tf.data batches from TFDS, prefetched to the devices.

For datasets too big to keep on the accelerator (e.g. ImageNet). Each epoch is a fresh
tf.data pipeline whose order is a pure function of ``(seed, epoch)``: TFDS shuffles its
files with that seed (``ReadConfig(shuffle_seed=...)``), ``Dataset.shuffle`` mixes
examples with it, and only then are examples cut into batches, so the order of examples
does not depend on the batch size, and a phase of a batch-size schedule just calls
``epoch_batches`` with its own ``global_batch``. With ``shuffle_buffer >= N`` the order is
a uniform random permutation; a smaller buffer mixes locally (as every tf.data pipeline).

Each device's ``P`` examples of a step are its ``k`` micro-batches of ``m``, laid out as
in memory (``batching.position_in_batch``): example ``r`` of micro-batch ``j`` on local
device ``d`` is position ``(j·D + d)·m + r`` of the process's batch, so each global
micro-batch is a consecutive slice of the stream and ghost batches hold the same examples
on any number of devices.

Batches stay uint8 on the way to the device (4x less traffic than float32) and carry
``index``, the example's position in this epoch's stream (on several processes, position
``k`` of process ``p``'s stream is ``k·P + p``, so no two processes share one); the step
normalizes and, when
asked, augments them with ``in_memory.transform_batch(image, index, mean, std,
augment=..., seed=..., epoch=...)``. Batches drop the remainder: an epoch is
``N // B`` updates, as in in-memory mode. On several hosts each process streams its own
slice (``tfds_source.process_split``) and ``global_batch`` is split evenly across processes;
with slices of ``N // P`` examples an epoch is ``(N // P) // (B // P) = N // B`` updates.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from flax import jax_utils

from lr_study import batching
from lr_study.runtime.devices import AXIS
from lr_study.data.sources import prepare_dataset, split_names, split_sizes
from lr_study.data.tfds_source import process_split
from lr_study.data.specs import dataset_spec
from lr_study.errors import ConfigError
from lr_study.runtime.quiet_tf import import_tfds

DEFAULT_SHUFFLE_BUFFER = 16384


def _epoch_seed(seed: int, epoch: int) -> int:
  """A 31-bit tf.data seed, a fixed function of (seed, epoch) (NumPy ``SeedSequence``)."""
  return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] >> 1)


def _process_layout(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    return jax.process_index(), jax.process_count()
  return process_index, process_count


def _split_dataset(dataset_cfg: Any, split: str, process_index: int, process_count: int,
                   **as_dataset_kwargs: Any) -> Any:
  """This process's slice of ``split`` as a tf.data dataset of (image uint8, label int32)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  names = split_names(dataset_spec(dataset_cfg))
  if split not in names:
    raise ConfigError(f'split {split!r} is not available (have: {", ".join(names)})')
  builder = prepare_dataset(dataset_cfg)
  ds = builder.as_dataset(
      split=process_split(split, names[split], process_index, process_count),
      **as_dataset_kwargs)
  return ds.map(lambda ex: (ex['image'], tf.cast(ex['label'], tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)


def _device_major(x: Any, accumulation_steps: int, num_devices: int, micro: int) -> Any:
  """A batch ``[k·D·m, ...]`` in stream order as ``[D, k·m, ...]``: position
  ``(j·D + d)·m + r`` (``batching.position_in_batch``) goes to device ``d``, column
  ``j·m + r`` (example ``r`` of its micro-batch ``j``)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rest = tf.shape(x)[1:]
  x = tf.reshape(x, tf.concat([[accumulation_steps, num_devices, micro], rest], axis=0))
  x = tf.transpose(x, [1, 0, *range(2, x.shape.rank)])
  return tf.reshape(x, tf.concat([[num_devices, accumulation_steps * micro], rest], axis=0))


def _to_devices(ds: Any, prefetch: int, devices: Any) -> Iterator[dict[str, Any]]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  batches = import_tfds().as_numpy(ds.prefetch(tf.data.AUTOTUNE))
  return jax_utils.prefetch_to_device(iter(batches), prefetch, devices, axis_name=AXIS)


def epoch_batches(
    dataset_cfg: Any, split: str, seed: int, epoch: int, global_batch: int, num_devices: int,
    *, accumulation_steps: int = 1, process_index: int | None = None,
    process_count: int | None = None, shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    prefetch: int = 2, devices: Any = None,
) -> Iterator[dict[str, Any]]:
  """One epoch of shuffled batches of ``split``, laid out for pmap and already on the devices.

  Args:
    dataset_cfg: ``config.dataset``.
    split: ``'train'`` (or ``'validation'``/``'test'`` to stream those shuffled).
    seed, epoch: fix the order of examples.
    global_batch: examples per update over all processes and devices.
    num_devices: local devices (``jax.local_device_count()``).
    accumulation_steps: ``k``, the micro-batches each device's ``P`` examples split into
      (``P = k·m``); each global micro-batch is a consecutive slice of the batch.
    process_index, process_count: default to ``jax.process_index()/process_count()``.
    shuffle_buffer: tf.data shuffle buffer, in examples.
    prefetch: batches kept in flight on the devices (``flax.jax_utils.prefetch_to_device``,
      on a mesh over ``devices`` named ``lr_study.runtime.devices.AXIS``, as the pmap steps
      expect, so feeding a batch never retraces a step).
    devices: local devices in pmap order; ``None`` = ``jax.local_devices()``.

  Yields:
    ``{'image': uint8 [D, P, H, W, C], 'label': int32 [D, P], 'index': int32 [D, P]}``
    with ``D = num_devices`` and ``P = global_batch // (process_count * D)``, column
    ``j·m + r`` of device ``d`` holding position ``(j·D + d)·m + r`` of the process's
    batch; ``N // B`` batches per epoch (remainder dropped).

  Raises:
    ConfigError: ``global_batch`` not divisible by processes times devices, or the
      per-device batch by ``accumulation_steps``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  process_index, process_count = _process_layout(process_index, process_count)
  local_batch = batching.divide_exactly(global_batch, process_count, 'global batch',
                                        'processes')
  per_device = batching.divide_exactly(local_batch, num_devices, 'per-process batch')
  micro = batching.micro_batch_size(per_device, accumulation_steps)
  tf_seed = _epoch_seed(seed, epoch)
  tfds = import_tfds()
  ds = _split_dataset(dataset_cfg, split, process_index, process_count, shuffle_files=True,
                      read_config=tfds.ReadConfig(shuffle_seed=tf_seed))
  ds = ds.shuffle(shuffle_buffer, seed=tf_seed).enumerate()
  ds = ds.batch(local_batch, drop_remainder=True)

  def lay_out(index, example):
    image, label = example
    index = tf.cast(index * process_count + process_index, tf.int32)
    return {name: _device_major(x, accumulation_steps, num_devices, micro)
            for name, x in (('image', image), ('label', label), ('index', index))}

  return _to_devices(ds.map(lay_out), prefetch, devices)


def eval_batches(
    dataset_cfg: Any, split: str, eval_batch_size: int, num_devices: int, *,
    process_index: int | None = None, process_count: int | None = None,
    prefetch: int = 2, devices: Any = None,
) -> Iterator[dict[str, Any]]:
  """``split`` in order, once, in padded and masked batches laid out for pmap.

  The batches are ``batching.eval_layout(N, eval_batch_size, num_devices, process_count)``:
  ``eval_batch_size`` examples over all processes' devices, as many batches on every
  process, so the pmapped collectives line up across hosts. Batches past the data are
  padded with zero images and ``mask`` 0, so ``sum(mask * metric)`` counts every example
  exactly once.

  Yields:
    ``{'image': uint8 [D, P, H, W, C], 'label': int32 [D, P], 'mask': float32 [D, P]}``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  process_index, process_count = _process_layout(process_index, process_count)
  spec = dataset_spec(dataset_cfg)
  ds = _split_dataset(dataset_cfg, split, process_index, process_count, shuffle_files=False)
  num_local = int(ds.cardinality())
  steps, _, per_device = batching.eval_layout(split_sizes(spec)[split], eval_batch_size,
                                              num_devices, process_count)
  padding = tf.data.Dataset.from_tensors(
      (tf.zeros(spec.image_shape, tf.uint8), tf.constant(0, tf.int32), tf.constant(0.0)))
  ds = ds.map(lambda image, label: (image, label, tf.constant(1.0)))
  ds = ds.concatenate(padding.repeat(steps * num_devices * per_device - num_local))
  ds = ds.batch(num_devices * per_device)

  def lay_out(image, label, mask):
    return {'image': tf.reshape(image, [num_devices, per_device, *spec.image_shape]),
            'label': tf.reshape(label, [num_devices, per_device]),
            'mask': tf.reshape(mask, [num_devices, per_device])}

  return _to_devices(ds.map(lay_out), prefetch, devices)
