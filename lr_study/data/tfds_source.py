"""Datasets read through TFDS: availability, offline preparation, per-process splits.

One path serves every TFDS dataset: ``tfds.builder(spec.tfds_name,
data_dir=dataset.data_dir)`` (``''`` = TFDS's default, ``~/tensorflow_datasets`` or
``$TFDS_DATA_DIR``), prepared in the ``tfrecord`` format (never ``parquet``, which loses
examples).

Where the data come from, in order:

1. already prepared in ``data_dir``;
2. ``digits`` (streamed): generated from scikit-learn, offline, in a few seconds;
3. ``dataset.manual_dir``: a folder holding the original archives under their official
   names (e.g. the four MNIST ``*-ubyte.gz`` files), which TFDS reads instead of
   downloading (``tfds.download.DownloadConfig(manual_dir=...)``);
4. the standard TFDS download, only when ``dataset.download`` is True (it needs internet).

Anything else is a one-line ``ConfigError`` raised at once, never a silent multi-minute
download attempt on a machine without internet.

Multi-host: each process reads only its own contiguous slice of every split,
``tfds.split_for_jax_process(split)`` (``lr_study.data.sources`` says how the slices are
cut). Prepare the dataset once before launching on all hosts (each host's ``data_dir``
must hold it, or point ``data_dir`` to a shared bucket): concurrent preparation is not
coordinated.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from lr_study.data.specs import DatasetSpec
from lr_study.errors import ConfigError
from lr_study.runtime.quiet_tf import import_tfds


def available() -> bool:
  """Whether TensorFlow and TFDS import here."""
  try:
    import_tfds()
  except ImportError:
    return False
  return True


def _builder(spec: DatasetSpec, dataset_cfg: Any) -> Any:
  tfds = import_tfds()
  if spec.name == 'digits':
    # Importing the module registers the builder with TFDS.
    from lr_study.data import digits  # pylint: disable=g-import-not-at-top,unused-import
  data_dir = dataset_cfg.data_dir
  if data_dir and os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise ConfigError(f'dataset.data_dir {data_dir!r} is a file, not a directory')
  return tfds.builder(spec.tfds_name, data_dir=data_dir or None)


def manual_dir(dataset_cfg: Any) -> str | None:
  """``dataset.manual_dir`` as a local folder; None if unset; a ConfigError if it is no
  directory."""
  path = dataset_cfg.manual_dir
  if not path:
    return None
  local = os.path.expanduser(path)
  if not os.path.isdir(local):
    raise ConfigError(f'dataset.manual_dir {path!r} is not a directory')
  return local


def _missing_files(spec: DatasetSpec, folder: str) -> list[str]:
  return [f for f in spec.manual_files if not os.path.isfile(os.path.join(folder, f))]


def _check_checksums(builder: Any, folder: str) -> None:
  """Each archive in ``folder`` has the SHA-256 TFDS records for it (read before any
  compute, so a corrupt file is one line, not a failure half-way through preparation)."""
  for info in builder.url_infos.values():
    path = os.path.join(folder, info.filename)
    if not os.path.isfile(path):
      continue
    with open(path, 'rb') as f:
      digest = hashlib.file_digest(f, 'sha256').hexdigest()
    if digest != info.checksum:
      raise ConfigError(f'dataset.manual_dir {folder!r}: {info.filename} is corrupt '
                        f'(sha256 {digest[:12]}…, {os.path.getsize(path):,} bytes; TFDS '
                        f'expects {info.checksum[:12]}…, {int(info.size):,} bytes)')


def source(spec: DatasetSpec, dataset_cfg: Any) -> tuple[Any, str]:
  """The builder and where its data come from: prepared|generate|manual_dir|download."""
  folder = manual_dir(dataset_cfg)
  builder = _builder(spec, dataset_cfg)
  if builder.is_prepared():
    return builder, 'prepared'
  if not spec.manual_files:
    return builder, 'generate'
  if folder is not None:
    missing = _missing_files(spec, folder)
    if missing:
      raise ConfigError(
          f'dataset.manual_dir {folder!r} lacks {", ".join(missing)} needed to prepare '
          f'{spec.name}')
    _check_checksums(builder, folder)
    return builder, 'manual_dir'
  if dataset_cfg.download:
    return builder, 'download'
  raise ConfigError(
      f'dataset {spec.name!r} is not prepared in {os.fspath(builder.data_path)}: set '
      f'dataset.manual_dir to a folder holding {", ".join(spec.manual_files)}, or prepare '
      f'it once with internet (dataset.download=True, or `tfds build {spec.tfds_name}`)')


def prepare(spec: DatasetSpec, dataset_cfg: Any) -> Any:
  """The prepared TFDS builder of ``config.dataset``, preparing it first if needed."""
  builder, where = source(spec, dataset_cfg)
  if where != 'prepared':
    tfds = import_tfds()
    builder.download_and_prepare(
        file_format='tfrecord',
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir(dataset_cfg), try_download_gcs=where == 'download'))
  return builder


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


def read_split(builder: Any, split: str, name: str, process_index: int, process_count: int
               ) -> tuple[np.ndarray, np.ndarray]:
  """This process's slice of TFDS split ``name`` in memory: uint8 images, int32 labels."""
  data = import_tfds().as_numpy(builder.as_dataset(
      split=process_split(split, name, process_index, process_count), batch_size=-1,
      shuffle_files=False))
  return np.asarray(data['image'], np.uint8), np.asarray(data['label'], np.int32)
