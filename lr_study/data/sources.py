"""Config-driven datasets: availability, splits, per-process slices, whole splits in memory.

Two readers serve ``config.dataset``, and read the same examples in the same order:

* NumPy (``lr_study.data.local``), which needs neither TensorFlow nor TFDS: ``digits``
  and ``arrays`` (an ``.npz`` file) always, and ``mnist``/``fashion_mnist`` from their
  four official files in ``dataset.manual_dir`` where TFDS does not import;
* TFDS (``lr_study.data.tfds_source``): every other dataset, and every dataset in
  ``dataset.mode='streaming'`` (tf.data). Where TensorFlow or TFDS does not import,
  naming one is a one-line ``ConfigError`` that says what to do instead.

Splits. ``dataset.train_split`` and ``dataset.test_split`` are TFDS split strings
(``specs.dataset_spec`` resolves them). The validation split is carved from the training
split as its last ``validation_size`` examples: with ``train_split='train'``,
``train[0:N-v]`` trains and ``train[N-v:N]`` validates. TFDS stores a split in a fixed
pseudo-random order (by a hash of each example's key), so this is a fixed random sample,
the same for every seed and batch size (Raschka's MNIST setup is ``validation_size=6000``:
54k train, 6k validation).

Multi-host (e.g. a TPU pod slice, one process per host, ``jax.distributed.initialize()``
called first): each process reads only its own contiguous slice of every split, as
``tfds.split_for_jax_process(split)`` cuts it with ``jax.process_index()`` and
``jax.process_count()``. The training slice drops the remainder, so every process holds
exactly ``N // process_count`` examples and runs the same number of steps per epoch; a
global batch ``B`` is ``B // process_count`` examples from each process, laid out on its
local devices, and the pmapped step sees all of them through its collectives. Evaluation
slices keep every example (they differ in size by at most one), so every test example is
counted once; see ``in_memory.eval_index_batches(num_steps=...)`` for equal step counts.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import numpy as np

from lr_study.data import local, tfds_source
from lr_study.data.specs import ARRAYS, DatasetSpec, dataset_spec, stored_sizes
from lr_study.data.splits import process_ranges, resolve_split, take
from lr_study.errors import ConfigError
from lr_study.runtime.quiet_tf import require

SPLITS = ('train', 'validation', 'test')


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


def _numpy_reader(spec: DatasetSpec, dataset_cfg: Any) -> Callable[[], local.Splits] | None:
  """What reads ``config.dataset`` with NumPy, or None where TFDS reads it."""
  if dataset_cfg.mode == 'streaming':
    if spec.name == ARRAYS:
      raise ConfigError(f"dataset {ARRAYS!r} is read into memory: set "
                        "dataset.mode='in_memory', not 'streaming'")
    return None
  if spec.name == 'digits':
    return local.digits
  if spec.name == ARRAYS:
    return functools.partial(local.npz, dataset_cfg.manual_dir)
  if (spec.name in local.IDX_DATASETS and dataset_cfg.manual_dir
      and not tfds_source.available()):
    return functools.partial(local.idx_folder, tfds_source.manual_dir(dataset_cfg),
                             stored_sizes(spec.name), spec.image_shape, spec.num_classes)
  return None


def _tfds_spec(dataset_cfg: Any) -> DatasetSpec:
  """The spec of a dataset TFDS reads, TFDS imported (else a one-line ConfigError)."""
  spec = dataset_spec(dataset_cfg)
  if dataset_cfg.mode == 'streaming':
    what, instead = "dataset.mode='streaming'", "set dataset.mode='in_memory'"
  elif spec.name in local.IDX_DATASETS:
    what, instead = f'dataset {spec.name!r}', (
        f'set dataset.manual_dir to a folder holding {", ".join(spec.manual_files)} (read '
        'with NumPy)')
  else:
    what, instead = f'dataset {spec.name!r}', f'save it as an .npz file for dataset.name={ARRAYS!r}'
  require(what, instead, tfds=True)
  return spec


def check_dataset_available(dataset_cfg: Any) -> str:
  """Checks, before any compute, that ``config.dataset`` can be read; touches no network.

  Returns:
    Where the data will come from: ``'generate'`` (digits, from scikit-learn),
    ``'file'`` (``arrays``: the ``.npz`` file, read and checked), ``'manual_dir'``
    (archives found there, read by NumPy or prepared by TFDS), ``'prepared'`` (by TFDS,
    in ``data_dir``) or ``'download'`` (``dataset.download`` is True).

  Raises:
    ConfigError: unknown dataset, bad ``manual_dir`` (not a directory, or lacking the
      archives), a bad ``.npz`` file, an unprepared TFDS dataset with neither
      ``manual_dir`` nor download, or a TFDS dataset where TFDS does not import.
  """
  spec = dataset_spec(dataset_cfg)
  if _numpy_reader(spec, dataset_cfg) is None:
    return tfds_source.source(_tfds_spec(dataset_cfg), dataset_cfg)[1]
  if spec.name in local.IDX_DATASETS:
    local.check_idx_folder(tfds_source.manual_dir(dataset_cfg))
    return 'manual_dir'
  return 'file' if spec.name == ARRAYS else 'generate'


def prepare_dataset(dataset_cfg: Any) -> Any:
  """The prepared TFDS builder of ``config.dataset``, preparing it first if needed."""
  return tfds_source.prepare(_tfds_spec(dataset_cfg), dataset_cfg)


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


def _numpy_splits(spec: DatasetSpec, whole: local.Splits, process_index: int,
                  process_count: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """This process's slice of every split of ``spec``, taken from the whole splits."""
  sizes = {name: len(labels) for name, (_, labels) in whole.items()}
  images = {name: split[0] for name, split in whole.items()}
  labels = {name: split[1] for name, split in whole.items()}
  out = {}
  for split, name in split_names(spec).items():
    ranges = process_ranges(resolve_split(f'{split}_split', name, spec.name, sizes),
                            process_index, process_count, drop_remainder=split == 'train')
    out[split] = take(images, ranges), take(labels, ranges)
  return out


def load_dataset_arrays(
    dataset_cfg: Any, *, process_index: int | None = None, process_count: int | None = None,
) -> DatasetArrays:
  """Reads (preparing it first if TFDS must) this process's slice of every split into
  memory.

  ``process_index``/``process_count`` default to ``jax.process_index()`` and
  ``jax.process_count()``.
  """
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index, process_count = jax.process_index(), jax.process_count()
  spec = dataset_spec(dataset_cfg)
  read = _numpy_reader(spec, dataset_cfg)
  if read is not None:
    splits = _numpy_splits(spec, read(), process_index, process_count)
  else:
    builder = prepare_dataset(dataset_cfg)
    splits = {split: tfds_source.read_split(builder, split, name, process_index, process_count)
              for split, name in split_names(spec).items()}
  arrays = {split: SplitArrays(*data) for split, data in splits.items()}
  return DatasetArrays(spec, arrays['train'], arrays['test'], arrays.get('validation'),
                       process_index, process_count)
