"""The embedded digits: read with NumPy in memory, in the order of the TFDS builder that
streams them; offline preparation, split sizes, classes, statistics."""

from __future__ import annotations

import numpy as np

from lr_study.data import local, tfds_source
from lr_study.data.sources import check_dataset_available, load_dataset_arrays, prepare_dataset
from lr_study.data.specs import dataset_spec
from lr_study.config import dataset_defaults


def test_streamed_digits_prepare_offline_as_tfrecord_into_the_configured_data_dir(tmp_path):
  cfg = dataset_defaults(data_dir=str(tmp_path), mode='streaming')
  assert check_dataset_available(cfg) == 'generate'
  builder = prepare_dataset(cfg)
  assert builder.is_prepared()
  assert builder.info.file_format.value == 'tfrecord'
  assert str(builder.data_path).startswith(str(tmp_path))
  assert check_dataset_available(cfg) == 'prepared'


def test_digits_has_the_documented_split_sizes_and_10_classes(digits_data_dir):
  cfg = dataset_defaults(data_dir=digits_data_dir)
  spec = dataset_spec(cfg)
  arrays = load_dataset_arrays(cfg)
  assert (spec.num_train_examples, spec.num_test_examples) == (1437, 360)
  assert arrays.train.images.shape == (1437, 8, 8, 1)
  assert arrays.test.images.shape == (360, 8, 8, 1)
  assert arrays.train.images.dtype == np.uint8 and arrays.train.labels.dtype == np.int32
  assert arrays.train.images.max() == 255
  assert set(arrays.train.labels) == set(arrays.test.labels) == set(range(10))
  assert spec.num_classes == 10 and arrays.validation is None


def test_digits_split_is_stratified(digits_data_dir):
  arrays = load_dataset_arrays(dataset_defaults(data_dir=digits_data_dir))
  train = np.bincount(arrays.train.labels) / 1437
  test = np.bincount(arrays.test.labels) / 360
  np.testing.assert_allclose(train, test, atol=0.005)


def test_digits_spec_mean_and_std_are_those_of_the_training_images(digits_data_dir):
  cfg = dataset_defaults(data_dir=digits_data_dir)
  x = load_dataset_arrays(cfg).train.images / 255.0
  spec = dataset_spec(cfg)
  np.testing.assert_allclose([x.mean()], spec.mean, atol=1e-6)
  np.testing.assert_allclose([x.std()], spec.std, atol=1e-6)


def test_digits_read_with_numpy_are_the_tfds_builder_s_examples_in_its_order(digits_data_dir):
  builder = prepare_dataset(dataset_defaults(data_dir=digits_data_dir, mode='streaming'))
  for split, (images, labels) in local.digits().items():
    tfds_images, tfds_labels = tfds_source.read_split(builder, split, split, 0, 1)
    np.testing.assert_array_equal(images, tfds_images)
    np.testing.assert_array_equal(labels, tfds_labels)
