"""Datasets read with NumPy (``lr_study.data.local``) and split strings resolved without
TFDS (``lr_study.data.splits``): the same examples, in the same order, as through TFDS;
an ``.npz`` of your own (``arrays``); MNIST's idx files; one-line errors for bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from lr_study.config import dataset_defaults
from lr_study.data import local, splits, tfds_source
from lr_study.data.sources import check_dataset_available, load_dataset_arrays
from lr_study.data.specs import dataset_spec
from lr_study.errors import ConfigError
from lr_study.runtime import quiet_tf

SIZES = {'train': 1437, 'test': 360}
SPLIT_STRINGS = ['train', 'test', 'train[:10%]', 'train[10%:]', 'test[50%:]', 'train[-500:]',
                 'train[:-5%]', 'train[12.5%:87.5%]', 'train[:5]+test[-50:]', 'train[33%:34%]',
                 'train[1:1]+test', 'train[:100] + test[200:]', 'train[-1437:]', 'train[100:50]',
                 'validation', 'train[:abc]', 'train[:2000]', 'train[:]', 'train[5]', 'train[1.5:]',
                 'train[-101%:]', 'all']


def _tfds_ranges(value: str) -> tuple | str:
  tfds = pytest.importorskip('tensorflow_datasets')
  infos = {name: tfds.core.SplitInfo(name=name, shard_lengths=[size], num_bytes=0)
           for name, size in SIZES.items()}
  try:
    absolute = tfds.core.ReadInstruction.from_spec(value).to_absolute(infos)
  except (ValueError, NotImplementedError):
    return 'error'
  ranges = [(a.splitname, a.from_ or 0, SIZES[a.splitname] if a.to is None else a.to)
            for a in absolute]
  return tuple(r for r in ranges if r[2] > r[1]) or 'error'


def _ranges(value: str) -> tuple | str:
  try:
    return splits.resolve_split('train_split', value, 'digits', SIZES)
  except ConfigError:
    return 'error'


@pytest.mark.parametrize('value', SPLIT_STRINGS)
def test_split_strings_resolve_to_the_ranges_tfds_resolves(value):
  """'all' is TFDS's alone; every other string reads the same examples or fails alike."""
  if value == 'all':
    assert _ranges(value) == 'error'
  else:
    assert _ranges(value) == _tfds_ranges(value)


@pytest.mark.parametrize('count', [1, 2, 3, 7])
@pytest.mark.parametrize('drop_remainder', [False, True])
def test_process_slices_are_those_of_tfds_split_for_jax_process(count, drop_remainder):
  tfds = pytest.importorskip('tensorflow_datasets')
  infos = {name: tfds.core.SplitInfo(name=name, shard_lengths=[size], num_bytes=0)
           for name, size in SIZES.items()}
  value = 'train[0:1300]+test[10:360]'
  for index in range(count):
    expected = [(a.splitname, a.from_ or 0, SIZES[a.splitname] if a.to is None else a.to)
                for a in tfds.core.ReadInstruction.from_spec(tfds.split_for_jax_process(
                    value, process_index=index, process_count=count,
                    drop_remainder=drop_remainder)).to_absolute(infos)]
    assert list(splits.process_ranges(_ranges(value), index, count, drop_remainder)) == expected


def test_examples_are_in_the_order_of_tfds_hashed_keys():
  hashing = pytest.importorskip('tensorflow_datasets.core.hashing')
  keys = np.arange(3000)
  for split in ('train', 'test'):
    hasher = hashing.Hasher(split)
    expected = sorted(keys, key=lambda k: hasher.hash_key(int(k)))
    np.testing.assert_array_equal(keys[local.tfds_order(split, keys)], expected)


def _write_idx(path, array: np.ndarray) -> None:
  header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, '>u4').tobytes()
  with gzip.open(path, 'wb', compresslevel=1) as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _idx_folder(folder, sizes: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The four MNIST files in ``folder``: each image's first pixel is its index mod 251, its
  label the index mod 10. Returns the arrays in file order."""
  folder.mkdir(exist_ok=True)
  out = {}
  for split, (image_file, label_file) in local.IDX_FILES.items():
    index = np.arange(sizes[split])
    images = np.zeros((len(index), 28, 28), np.uint8)
    images[:, 0, 0] = index % 251
    _write_idx(folder / image_file, images)
    _write_idx(folder / label_file, index % 10)
    out[split] = images, index % 10
  return out


def test_idx_files_are_read_in_tfds_order(tmp_path):
  written = _idx_folder(tmp_path / 'idx', {'train': 300, 'test': 50})
  read = local.idx_folder(str(tmp_path / 'idx'), {'train': 300, 'test': 50}, (28, 28, 1), 10)
  for split, (images, labels) in written.items():
    order = local.tfds_order(split, np.arange(len(labels)))
    assert read[split][0].shape == (len(labels), 28, 28, 1) and read[split][0].dtype == np.uint8
    np.testing.assert_array_equal(read[split][0][..., 0], images[order])
    np.testing.assert_array_equal(read[split][1], labels[order])


@pytest.mark.parametrize('damage, reason', [
    (lambda f: f.unlink(), 'lacks t10k-labels-idx1-ubyte.gz'),
    (lambda f: f.write_bytes(b'not gzip'), 't10k-labels-idx1-ubyte.gz is not a gzip file'),
    (lambda f: _write_idx(f, np.zeros((50, 2))), 'is not an idx file of 1-D uint8'),
    (lambda f: _write_idx(f, np.zeros(49)), 'holds (49,) in 57 bytes, not (50,)'),
    (lambda f: _write_idx(f, np.full(50, 10)), 'holds label 10, not 0..9'),
])
def test_a_bad_idx_file_is_a_one_line_error_naming_it(tmp_path, damage, reason):
  folder = tmp_path / 'idx'
  _idx_folder(folder, {'train': 300, 'test': 50})
  damage(folder / 't10k-labels-idx1-ubyte.gz')
  with pytest.raises(ConfigError) as error:
    local.idx_folder(str(folder), {'train': 300, 'test': 50}, (28, 28, 1), 10)
  assert str(error.value).startswith(f'dataset.manual_dir {str(folder)!r}')
  assert reason in str(error.value) and '\n' not in str(error.value)


def test_mnist_from_its_files_is_read_with_numpy_where_tfds_does_not_import(tmp_path,
                                                                            monkeypatch):
  monkeypatch.setattr(tfds_source, 'available', lambda: False)
  written = _idx_folder(tmp_path / 'mnist', {'train': 60000, 'test': 10000})
  cfg = dataset_defaults('mnist', manual_dir=str(tmp_path / 'mnist'), validation_size=6000)
  assert check_dataset_available(cfg) == 'manual_dir'
  arrays = load_dataset_arrays(cfg, process_index=0, process_count=1)
  assert (len(arrays.train.labels), len(arrays.validation.labels),
          len(arrays.test.labels)) == (54000, 6000, 10000)
  order = local.tfds_order('train', np.arange(60000))
  np.testing.assert_array_equal(arrays.validation.labels, written['train'][1][order[54000:]])
  (tmp_path / 'mnist' / 'train-labels-idx1-ubyte.gz').unlink()
  with pytest.raises(ConfigError, match=r"^dataset.manual_dir '.*' lacks train-labels-idx1"):
    check_dataset_available(cfg)


def test_the_digits_are_sklearns_load_digits_split_by_its_stratified_train_test_split():
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  keys = np.arange(len(digits.target))
  train, test = train_test_split(keys, test_size=360, stratify=digits.target, random_state=0)
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  for split, split_keys in (('train', np.sort(train)), ('test', np.sort(test))):
    got_images, got_labels, got_keys = local.digits_by_key()[split]
    np.testing.assert_array_equal(got_keys, split_keys)
    np.testing.assert_array_equal(got_images, images[split_keys])
    np.testing.assert_array_equal(got_labels, digits.target[split_keys])


def test_the_digits_without_scikit_learn_are_a_one_line_error_naming_it(monkeypatch):
  monkeypatch.setattr(local.importlib.util, 'find_spec', lambda name: None)
  local.digits_by_key.cache_clear()
  try:
    with pytest.raises(ConfigError, match=r'^dataset digits: scikit-learn is not installed '
                                          r'\(pip install scikit-learn\)'):
      local.digits()
  finally:
    local.digits_by_key.cache_clear()


def _digits_npz(path, **changes) -> None:
  digits = local.digits()
  arrays = {'x_train': digits['train'][0][..., 0], 'y_train': digits['train'][1],
            'x_test': digits['test'][0][..., 0], 'y_test': digits['test'][1], **changes}
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_an_npz_file_is_a_dataset_with_its_own_sizes_classes_and_statistics(tmp_path):
  _digits_npz(tmp_path / 'digits.npz')
  cfg = dataset_defaults('arrays', manual_dir=str(tmp_path / 'digits.npz'),
                         train_split='train[:1000]', validation_size=100)
  spec = dataset_spec(cfg)
  assert (spec.num_train_examples, spec.num_validation_examples, spec.num_test_examples) == (
      900, 100, 360)
  assert spec.image_shape == (8, 8, 1) and spec.num_classes == 10
  digits = dataset_spec(dataset_defaults('digits'))
  np.testing.assert_allclose(spec.mean + spec.std, digits.mean + digits.std, atol=1e-6)
  assert check_dataset_available(cfg) == 'file'
  arrays = load_dataset_arrays(cfg, process_index=0, process_count=1)
  expected = local.digits()['train']
  np.testing.assert_array_equal(arrays.validation.images, expected[0][900:1000])
  np.testing.assert_array_equal(arrays.train.labels, expected[1][:900])
  assert arrays.test.images.shape == (360, 8, 8, 1) and arrays.train.labels.dtype == np.int32


@pytest.mark.parametrize('changes, reason', [
    (dict(y_test=None), 'lacks y_test (has x_train, y_train, x_test)'),
    (dict(x_train=np.zeros((10, 8, 8), np.float32), y_train=np.zeros(10, int)),
     'x_train must be uint8 images [N, H, W] or [N, H, W, C], got float32 [10, 8, 8]'),
    (dict(y_train=np.zeros(5, int)), 'y_train must be 1437 integer labels >= 0, got int64 [5]'),
    (dict(x_test=np.zeros((360, 9, 9), np.uint8)), 'x_train images are [8, 8, 1], x_test '
                                                    'images [9, 9, 1]'),
])
def test_a_bad_npz_file_is_a_one_line_error_naming_it(tmp_path, changes, reason):
  path = str(tmp_path / 'data.npz')
  _digits_npz(path, **changes)
  with pytest.raises(ConfigError) as error:
    check_dataset_available(dataset_defaults('arrays', manual_dir=path))
  assert str(error.value) == f"dataset.manual_dir {path!r} (dataset 'arrays'): {reason}"


def test_an_arrays_path_that_is_no_npz_file_is_a_one_line_error(tmp_path):
  text, array = tmp_path / 'data.txt', tmp_path / 'one.npy'
  text.write_text('1 2 3')
  np.save(array, np.zeros(3))
  for path, reason in ((tmp_path / 'absent.npz', 'is not a file'),
                       (tmp_path, 'is not a file'),
                       (text, 'is not an .npz file'),
                       (array, 'is one .npy array, not an .npz file of x_train')):
    with pytest.raises(ConfigError) as error:
      dataset_spec(dataset_defaults('arrays', manual_dir=str(path)))
    assert str(error.value).startswith(f"dataset.manual_dir {str(path)!r} (dataset 'arrays'): "
                                       f'{reason}')
    assert '\n' not in str(error.value)
  with pytest.raises(ConfigError, match="^dataset 'arrays' reads dataset.manual_dir, an .npz"):
    dataset_spec(dataset_defaults('arrays'))


def test_arrays_are_read_in_memory_only(tmp_path):
  _digits_npz(tmp_path / 'data.npz')
  cfg = dataset_defaults('arrays', manual_dir=str(tmp_path / 'data.npz'), mode='streaming')
  with pytest.raises(ConfigError, match="^dataset 'arrays' is read into memory: set "
                                        "dataset.mode='in_memory'"):
    check_dataset_available(cfg)


def test_pixel_statistics_are_numpy_mean_and_std_per_channel():
  images = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
  mean, std = local.pixel_statistics(images)
  np.testing.assert_allclose(mean, (images / 255).mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(std, (images / 255).std(axis=(0, 1, 2)), rtol=1e-12)


def test_where_tfds_does_not_import_naming_what_needs_it_is_one_line(monkeypatch):
  def refuse():
    raise ImportError('No module named tensorflow_datasets')

  monkeypatch.setattr(quiet_tf, 'import_tfds', refuse)
  monkeypatch.setattr(tfds_source, 'available', lambda: False)
  assert check_dataset_available(dataset_defaults('digits')) == 'generate'
  needs = ('needs TensorFlow Datasets, which does not import here (No module named '
           'tensorflow_datasets): pip install "lr_study[tfds]", or ')
  for cfg, line in (
      (dataset_defaults('digits', mode='streaming'),
       f"dataset.mode='streaming' {needs}set dataset.mode='in_memory'"),
      (dataset_defaults('mnist'),
       f"dataset 'mnist' {needs}set dataset.manual_dir to a folder holding "
       'train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, '
       't10k-labels-idx1-ubyte.gz (read with NumPy)'),
      (dataset_defaults('cifar10'),
       f"dataset 'cifar10' {needs}save it as an .npz file for dataset.name='arrays'")):
    with pytest.raises(ConfigError) as error:
      check_dataset_available(cfg)
    assert str(error.value) == line
