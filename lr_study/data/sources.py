"""Config-driven TFDS sources: availability, offline preparation, splits, whole-split arrays.

One path serves every dataset: ``tfds.builder(spec.tfds_name, data_dir=dataset.data_dir)``
(``''`` = TFDS's default, ``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``), prepared in
the ``tfrecord`` format (never ``parquet``, which loses examples).

Where the data come from, in order:

1. already prepared in ``data_dir``;
2. ``digits``: generated from scikit-learn, offline, in a few seconds;
3. ``dataset.manual_dir``: a folder holding the original archives under their official
   names (e.g. the four MNIST ``*-ubyte.gz`` files), which TFDS reads instead of
   downloading (``tfds.download.DownloadConfig(manual_dir=...)``);
4. the standard TFDS download, only when ``dataset.download`` is True (it needs internet).

Anything else is a one-line ``ConfigError`` raised at once, never a silent multi-minute
download attempt on a machine without internet.

Splits. ``dataset.train_split`` and ``dataset.test_split`` are TFDS split strings
(``specs.dataset_spec`` resolves them). The validation split is carved from the training
split as its last ``validation_size`` examples: with ``train_split='train'``,
``train[0:N-v]`` trains and ``train[N-v:N]`` validates. TFDS
stores a split in a fixed pseudo-random order (by a hash of each example's key), so this is
a fixed random sample, the same for every seed and batch size (Raschka's MNIST setup is
``validation_size=6000``: 54k train, 6k validation).

Multi-host (e.g. a TPU pod slice, one process per host, ``jax.distributed.initialize()``
called first): each process reads only its own contiguous slice of every split,
``tfds.split_for_jax_process(split)`` with ``jax.process_index()`` and
``jax.process_count()``. The training slice drops the remainder, so every process holds
exactly ``N // process_count`` examples and runs the same number of steps per epoch; a
global batch ``B`` is ``B // process_count`` examples from each process, laid out on its
local devices, and the pmapped step sees all of them through its collectives. Evaluation
slices keep every example (they differ in size by at most one), so every test example is
counted once; see ``in_memory.eval_index_batches(num_steps=...)`` for equal step counts.
Prepare the dataset once before launching on all hosts (each host's ``data_dir`` must
hold it, or point ``data_dir`` to a shared bucket): concurrent preparation is not
coordinated.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from typing import Any

import numpy as np

from lr_study.data.specs import DatasetSpec, dataset_spec
from lr_study.errors import ConfigError
from lr_study.runtime.quiet_tf import import_tensorflow

SPLITS = ('train', 'validation', 'test')


@functools.cache
def import_tfds() -> Any:
  """``tensorflow_datasets``, over a quiet TensorFlow that sees no GPU
  (``lr_study.runtime.quiet_tf``)."""
  import_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def _builder(spec: DatasetSpec, dataset_cfg: Any) -> Any:
  tfds = import_tfds()
  if spec.name == 'digits':
    # Importing the module registers the builder with TFDS.
    from lr_study.data import digits  # pylint: disable=g-import-not-at-top,unused-import
  data_dir = dataset_cfg.data_dir
  if data_dir and os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise ConfigError(f'dataset.data_dir {data_dir!r} is a file, not a directory')
  return tfds.builder(spec.tfds_name, data_dir=data_dir or None)


def _manual_dir(dataset_cfg: Any) -> str | None:
  manual_dir = dataset_cfg.manual_dir
  if not manual_dir:
    return None
  path = os.path.expanduser(manual_dir)
  if not os.path.isdir(path):
    raise ConfigError(f'dataset.manual_dir {manual_dir!r} is not a directory')
  return path


def _missing_files(spec: DatasetSpec, manual_dir: str) -> list[str]:
  return [f for f in spec.manual_files if not os.path.isfile(os.path.join(manual_dir, f))]


def _check_checksums(builder: Any, manual_dir: str) -> None:
  """Each archive in ``manual_dir`` has the SHA-256 TFDS records for it (read before any
  compute, so a corrupt file is one line, not a failure half-way through preparation)."""
  for info in builder.url_infos.values():
    path = os.path.join(manual_dir, info.filename)
    if not os.path.isfile(path):
      continue
    with open(path, 'rb') as f:
      digest = hashlib.file_digest(f, 'sha256').hexdigest()
    if digest != info.checksum:
      raise ConfigError(f'dataset.manual_dir {manual_dir!r}: {info.filename} is corrupt '
                        f'(sha256 {digest[:12]}…, {os.path.getsize(path):,} bytes; TFDS '
                        f'expects {info.checksum[:12]}…, {int(info.size):,} bytes)')


def _source(dataset_cfg: Any) -> tuple[DatasetSpec, Any, str]:
  """Spec, builder and where the data come from: prepared|generate|manual_dir|download."""
  spec = dataset_spec(dataset_cfg)
  manual_dir = _manual_dir(dataset_cfg)
  builder = _builder(spec, dataset_cfg)
  if builder.is_prepared():
    return spec, builder, 'prepared'
  if not spec.manual_files:
    return spec, builder, 'generate'
  if manual_dir is not None:
    missing = _missing_files(spec, manual_dir)
    if missing:
      raise ConfigError(
          f'dataset.manual_dir {manual_dir!r} lacks {", ".join(missing)} needed to prepare '
          f'{spec.name}')
    _check_checksums(builder, manual_dir)
    return spec, builder, 'manual_dir'
  if dataset_cfg.download:
    return spec, builder, 'download'
  raise ConfigError(
      f'dataset {spec.name!r} is not prepared in {os.fspath(builder.data_path)}: set '
      f'dataset.manual_dir to a folder holding {", ".join(spec.manual_files)}, or prepare '
      f'it once with internet (dataset.download=True, or `tfds build {spec.tfds_name}`)')


def check_dataset_available(dataset_cfg: Any) -> str:
  """Checks, before any compute, that ``config.dataset`` can be read; touches no network.

  Returns:
    Where the data will come from: ``'prepared'`` (in ``data_dir``), ``'generate'``
    (digits, from scikit-learn), ``'manual_dir'`` (archives found there) or
    ``'download'`` (``dataset.download`` is True).

  Raises:
    ConfigError: unknown dataset, bad ``manual_dir`` (not a directory, or lacking the
      archives), or an unprepared dataset with neither ``manual_dir`` nor download.
  """
  return _source(dataset_cfg)[2]


def prepare_dataset(dataset_cfg: Any) -> Any:
  """The prepared TFDS builder of ``config.dataset``, preparing it first if needed."""
  _, builder, source = _source(dataset_cfg)
  if source != 'prepared':
    tfds = import_tfds()
    builder.download_and_prepare(
        file_format='tfrecord',
        download_config=tfds.download.DownloadConfig(
            manual_dir=_manual_dir(dataset_cfg), try_download_gcs=source == 'download'))
  return builder


def split_names(spec: DatasetSpec) -> dict[str, str]:
  """TFDS split strings of train, validation (when carved) and test, all processes."""
  names = {'train': spec.train_split, 'test': spec.test_split}
  if spec.validation_split:
    names['validation'] = spec.validation_split
  return names


def split_sizes(spec: DatasetSpec) -> dict[str, int]:
  """Examples in each split of ``split_names``, all processes together."""
  sizes = {'train': spec.num_train_examples, 'test': spec.num_test_examples}
  if spec.num_validation_examples:
    sizes['validation'] = spec.num_validation_examples
  return sizes


def process_split(split: str, name: str, process_index: int, process_count: int) -> Any:
  """This process's slice of TFDS split ``name`` (the role ``split`` decides remainders).

  The training slice drops the remainder so all processes run equal epochs; evaluation
  slices keep every example.
  """
  if process_count == 1:
    return name
  tfds = import_tfds()
  return tfds.split_for_jax_process(
      name, process_index=process_index, process_count=process_count,
      drop_remainder=split == 'train')


@dataclasses.dataclass(frozen=True)
class SplitArrays:
  """One split of this process in host memory: uint8 [N, H, W, C] and int32 [N]."""

  images: np.ndarray
  labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class DatasetArrays:
  """This process's slice of every split, ready to place on the devices.

  ``validation`` is None unless ``dataset.validation_size`` carves one. ``spec`` counts
  all processes together.
  """

  spec: DatasetSpec
  train: SplitArrays
  test: SplitArrays
  validation: SplitArrays | None = None
  process_index: int = 0
  process_count: int = 1


def load_dataset_arrays(
    dataset_cfg: Any, *, process_index: int | None = None, process_count: int | None = None,
) -> DatasetArrays:
  """Prepares (if needed) and reads this process's slice of every split into memory.

  ``process_index``/``process_count`` default to ``jax.process_index()`` and
  ``jax.process_count()``.
  """
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index, process_count = jax.process_index(), jax.process_count()
  builder = prepare_dataset(dataset_cfg)
  spec = dataset_spec(dataset_cfg)
  tfds = import_tfds()
  splits = {}
  for split, name in split_names(spec).items():
    data = tfds.as_numpy(builder.as_dataset(
        split=process_split(split, name, process_index, process_count), batch_size=-1,
        shuffle_files=False))
    splits[split] = SplitArrays(np.asarray(data['image'], np.uint8),
                                np.asarray(data['label'], np.int32))
  return DatasetArrays(spec, splits['train'], splits['test'], splits.get('validation'),
                       process_index, process_count)
