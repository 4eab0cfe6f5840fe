"""Datasets read with NumPy alone, with neither TensorFlow nor TFDS installed.

* ``digits``: scikit-learn's embedded handwritten digits (``lr_study.data.digits``
  describes the split), always read here in memory.
* ``mnist`` and ``fashion_mnist`` from ``dataset.manual_dir``, a folder holding their
  four official idx files (``train-images-idx3-ubyte.gz``, ...), where TFDS is not
  installed.
* ``arrays``: your own data, ``dataset.manual_dir`` naming an ``.npz`` file with
  ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the keys of Keras's ``mnist.npz``):
  uint8 images ``[N, H, W]`` or ``[N, H, W, C]`` and integer labels ``0..K-1``, ``[N]``.
  The splits are taken in the file's order (a carved validation split is the end of
  ``x_train``: shuffle a file sorted by class first).

Digits and MNIST come in the order TFDS stores them: examples sorted by the MD5 hash of
their key salted with the split name (``tfds.core.hashing``; the key is the example's
index, in the official files or in ``load_digits()``). So a run reads the same examples
in the same order whether TFDS is installed or not; tests check it against TFDS.

Each reader returns ``{'train': (images, labels), 'test': (images, labels)}``: uint8
``[N, H, W, C]`` and int32 ``[N]``. A bad path or file is a one-line ``ConfigError``
naming it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import os
import zipfile
from typing import Any

import numpy as np

from lr_study.data.digits_split import TEST_KEYS
from lr_study.errors import ConfigError

Splits = dict[str, tuple[np.ndarray, np.ndarray]]

IDX_DATASETS = ('mnist', 'fashion_mnist')
IDX_FILES = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
             'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}
NPZ_KEYS = {'train': ('x_train', 'y_train'), 'test': ('x_test', 'y_test')}
_ALL_KEYS = tuple(k for keys in NPZ_KEYS.values() for k in keys)
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, ValueError)


def tfds_order(split: str, keys: np.ndarray) -> np.ndarray:
  """The permutation that puts examples with ``keys`` in the order TFDS stores split
  ``split``: ascending MD5 of the split name followed by the key."""
  salt = hashlib.md5(split.encode())

  def digest(i: int) -> bytes:
    md5 = salt.copy()
    md5.update(str(int(keys[i])).encode())
    return md5.digest()

  return np.asarray(sorted(range(len(keys)), key=digest), np.int64)


def _digits_csv() -> str:
  """The path of scikit-learn's ``digits.csv.gz``, found without importing scikit-learn
  (its import alone takes about a second)."""
  spec = importlib.util.find_spec('sklearn')
  package = os.path.dirname(spec.origin) if spec and spec.origin else ''
  path = os.path.join(package, 'datasets', 'data', 'digits.csv.gz')
  if not os.path.isfile(path):
    raise ConfigError('dataset digits: scikit-learn is not installed (pip install '
                      'scikit-learn), or its datasets/data/digits.csv.gz is missing')
  return path


@functools.cache
def digits_by_key() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """The fixed digits split, ``{'train'|'test': (images uint8 [N,8,8,1], labels int64 [N],
  keys)}`` in ``load_digits()`` order within each split; ``keys`` index ``load_digits()``,
  whose file this reads as ``load_digits`` does (64 pixel counts 0..16, then the label)."""
  with gzip.open(_digits_csv(), 'rt') as f:
    data = np.loadtxt(f, delimiter=',')
  images = np.round(data[:, :-1].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = data[:, -1].astype(np.int64)
  test = np.zeros(len(labels), bool)
  test[list(TEST_KEYS)] = True
  return {split: (images[keys], labels[keys], keys)
          for split, keys in (('train', np.flatnonzero(~test)), ('test', np.flatnonzero(test)))}


def digits() -> Splits:
  """The embedded digits in TFDS's order."""
  out = {}
  for split, (images, labels, keys) in digits_by_key().items():
    order = tfds_order(split, keys)
    out[split] = images[order], labels[order].astype(np.int32)
  return out


def _idx(path: str, shape: tuple[int, ...]) -> np.ndarray:
  """The uint8 array of gzip idx file ``path``, checked to have ``shape``."""
  try:
    with gzip.open(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise ValueError(f'is not a gzip file ({e})') from None
  ndim = len(shape)
  if len(data) < 4 + 4 * ndim or data[:4] != bytes([0, 0, 8, ndim]):
    raise ValueError(f'is not an idx file of {ndim}-D uint8 (header {data[:4].hex()})')
  dims = tuple(int(d) for d in np.frombuffer(data, '>u4', ndim, 4))
  if dims != shape or len(data) != 4 + 4 * ndim + int(np.prod(shape)):
    raise ValueError(f'holds {dims} in {len(data):,} bytes, not {shape}')
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def check_idx_folder(manual_dir: str) -> None:
  """A ConfigError naming the idx files that folder ``manual_dir`` lacks."""
  missing = [f for names in IDX_FILES.values() for f in names
             if not os.path.isfile(os.path.join(manual_dir, f))]
  if missing:
    raise ConfigError(f'dataset.manual_dir {manual_dir!r} lacks {", ".join(missing)}')


def idx_folder(manual_dir: str, sizes: dict[str, int], image_shape: tuple[int, int, int],
               num_classes: int) -> Splits:
  """MNIST-format splits from their four official idx files in ``manual_dir``, in TFDS's
  order (the key is the example's index in its file), checked to hold ``sizes`` examples
  of ``image_shape`` and labels below ``num_classes``."""
  check_idx_folder(manual_dir)
  out = {}
  for split, (image_file, label_file) in IDX_FILES.items():
    n = sizes[split]
    arrays = []
    for name, shape in ((image_file, (n, *image_shape[:2])), (label_file, (n,))):
      try:
        arrays.append(_idx(os.path.join(manual_dir, name), shape))
      except ValueError as e:
        raise ConfigError(f'dataset.manual_dir {manual_dir!r}: {name} {e}') from None
    images, labels = arrays
    if labels.max() >= num_classes:
      raise ConfigError(f'dataset.manual_dir {manual_dir!r}: {label_file} holds label '
                        f'{labels.max()}, not 0..{num_classes - 1}')
    order = tfds_order(split, np.arange(n))
    out[split] = images[order][..., None], labels[order].astype(np.int32)
  return out


def _npz_error(path: str, reason: str) -> ConfigError:
  return ConfigError(f"dataset.manual_dir {path!r} (dataset 'arrays'): {reason}")


def _checked_npz(path: str, data: Any) -> Splits:
  missing = [k for k in _ALL_KEYS if k not in data.files]
  if missing:
    raise _npz_error(path, f'lacks {", ".join(missing)} (has {", ".join(data.files) or "none"})')
  out = {}
  for split, (x_key, y_key) in NPZ_KEYS.items():
    try:
      images, labels = data[x_key], data[y_key]
    except _READ_ERRORS as e:  # a corrupt member, or an object array (pickled)
      raise _npz_error(path, f'{x_key} or {y_key} cannot be read ({e})') from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or not len(images):
      raise _npz_error(path, f'{x_key} must be uint8 images [N, H, W] or [N, H, W, C], got '
                       f'{images.dtype} {list(images.shape)}')
    if (not np.issubdtype(labels.dtype, np.integer) or labels.shape != images.shape[:1]
        or labels.min() < 0):
      raise _npz_error(path, f'{y_key} must be {len(images)} integer labels >= 0, got '
                       f'{labels.dtype} {list(labels.shape)}')
    out[split] = images.reshape(*images.shape[:3], -1), labels.astype(np.int32)
  if out['train'][0].shape[1:] != out['test'][0].shape[1:]:
    raise _npz_error(path, f'x_train images are {list(out["train"][0].shape[1:])}, x_test '
                     f'images {list(out["test"][0].shape[1:])}')
  return out


@functools.lru_cache(maxsize=2)
def _read_npz(path: str, modified_ns: int) -> Splits:
  del modified_ns  # part of the cache key: a rewritten file is read again
  try:
    data = np.load(path, allow_pickle=False)
  except _READ_ERRORS as e:  # a ValueError: no NumPy file at all (pickled data)
    raise _npz_error(path, 'is not an .npz file' + (
        '' if isinstance(e, ValueError) else f' ({e})')) from None
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise _npz_error(path, f'is one .npy array, not an .npz file of {", ".join(_ALL_KEYS)}')
  with data:
    return _checked_npz(path, data)


def npz(path: str) -> Splits:
  """The splits of an ``.npz`` file of ``x_train``, ``y_train``, ``x_test``, ``y_test``,
  read once while it is unchanged."""
  if not path:
    raise ConfigError("dataset 'arrays' reads dataset.manual_dir, an .npz file of x_train, "
                      'y_train, x_test, y_test: it is empty')
  local = os.path.expanduser(path)
  if not os.path.isfile(local):
    raise _npz_error(path, 'is not a file')
  return _read_npz(local, os.stat(local).st_mtime_ns)


def pixel_statistics(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and population std of uint8 ``images`` [N, H, W, C] scaled to
  [0, 1], from each channel's histogram (no float copy of the data)."""
  values = np.arange(256) / 255.0
  means, stds = [], []
  for channel in range(images.shape[-1]):
    counts = np.bincount(images[..., channel].ravel(), minlength=256)
    mean = counts @ values / counts.sum()
    means.append(float(mean))
    stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())))
  return tuple(means), tuple(stds)
