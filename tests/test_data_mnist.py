"""Real MNIST, prepared offline by TFDS from the four official files in ../shared/data/mnist,
and read from them with NumPy (where TFDS does not import) into the same arrays.

The preparation takes about 20 s on 2 cores, so it runs once per test run; this file is
kept apart so that CI can choose to run it.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from conftest import once_per_run
from lr_study.data import tfds_source
from lr_study.data.sources import DatasetArrays, check_dataset_available, load_dataset_arrays
from lr_study.data.specs import dataset_spec
from lr_study.config import dataset_defaults

pytestmark = pytest.mark.slow  # the TFDS preparation of 70,000 images

MNIST_DIR = pathlib.Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'mnist'
# From ../shared/data/README.md.
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope='session')
def mnist(tmp_path_factory) -> tuple[DatasetArrays, dict]:
  if not MNIST_DIR.is_dir():
    pytest.skip(f'the shared MNIST files are not here: {MNIST_DIR} is absent')
  def prepare(data_dir: str) -> str:  # TFDS prepares it once, for every worker
    cfg = dataset_defaults('mnist', data_dir=data_dir, manual_dir=str(MNIST_DIR))
    assert check_dataset_available(cfg) == 'manual_dir'
    load_dataset_arrays(cfg, process_index=0, process_count=1)
    return data_dir
  data_dir = once_per_run(tmp_path_factory, 'tfds_mnist', prepare)
  cfg = dataset_defaults('mnist', data_dir=data_dir, manual_dir=str(MNIST_DIR))
  return load_dataset_arrays(cfg, process_index=0, process_count=1), cfg


def test_mnist_from_manual_dir_has_60000_train_and_10000_test_images(mnist):
  arrays, _ = mnist
  assert arrays.train.images.shape == (60000, 28, 28, 1)
  assert arrays.test.images.shape == (10000, 28, 28, 1)
  assert arrays.train.images.dtype == np.uint8 and arrays.train.labels.dtype == np.int32


def test_mnist_label_counts_are_those_of_the_shared_readme(mnist):
  arrays, _ = mnist
  assert np.bincount(arrays.train.labels).tolist() == TRAIN_LABEL_COUNTS
  assert np.bincount(arrays.test.labels).tolist() == TEST_LABEL_COUNTS


def test_mnist_spec_mean_and_std_are_those_of_the_training_images(mnist):
  arrays, cfg = mnist
  x = arrays.train.images / 255.0
  spec = dataset_spec(cfg)
  np.testing.assert_allclose([x.mean()], spec.mean, atol=1e-6)
  np.testing.assert_allclose([x.std()], spec.std, atol=1e-6)


def test_mnist_read_with_numpy_from_its_files_equals_tfds(mnist, monkeypatch):
  arrays, cfg = mnist
  monkeypatch.setattr(tfds_source, 'available', lambda: False)
  read = load_dataset_arrays(cfg, process_index=0, process_count=1)
  for split in ('train', 'test'):
    np.testing.assert_array_equal(getattr(read, split).images, getattr(arrays, split).images)
    np.testing.assert_array_equal(getattr(read, split).labels, getattr(arrays, split).labels)
