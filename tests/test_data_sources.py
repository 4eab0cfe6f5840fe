"""Config-driven TFDS sources: specs, availability errors, validation carving, process slices."""

from __future__ import annotations

import numpy as np
import pytest

from lr_study.data.sources import check_dataset_available, load_dataset_arrays
from lr_study.data.specs import dataset_spec
from lr_study.errors import ConfigError
from lr_study.runtime.quiet_tf import import_tfds
from lr_study.config import dataset_defaults

MNIST_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
               't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')


@pytest.fixture
def no_download(monkeypatch):
  """Fails the test if anything tries to prepare (download) a dataset."""
  tfds = import_tfds()

  def refuse(*args, **kwargs):
    raise AssertionError('download_and_prepare was called')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', refuse)


def test_dataset_spec_needs_no_data_and_subtracts_the_validation_split(tmp_path):
  spec = dataset_spec(dataset_defaults('mnist', data_dir=str(tmp_path / 'absent'),
                                     validation_size=6000))
  assert (spec.num_train_examples, spec.num_validation_examples) == (54000, 6000)
  assert spec.num_test_examples == 10000 and spec.image_shape == (28, 28, 1)
  cifar = dataset_spec(dataset_defaults('cifar100'))
  assert cifar.num_classes == 100 and cifar.image_shape == (32, 32, 3) and len(cifar.std) == 3


def test_split_strings_resolve_to_exact_sizes_before_any_data_is_read(tmp_path):
  spec = dataset_spec(dataset_defaults('mnist', data_dir=str(tmp_path / 'absent'),
                                     train_split='train[:10%]', test_split='test[50%:]',
                                     validation_size=600))
  assert (spec.num_train_examples, spec.num_validation_examples,
          spec.num_test_examples) == (5400, 600, 5000)
  assert (spec.train_split, spec.validation_split, spec.test_split) == (
      'train[0:5400]', 'train[5400:6000]', 'test[5000:10000]')


def test_validation_is_carved_from_the_end_of_a_compound_train_split():
  spec = dataset_spec(dataset_defaults('mnist', train_split='train[:100]+test[-50:]',
                                     validation_size=100))
  assert (spec.train_split, spec.validation_split) == ('train[0:50]',
                                                       'train[50:100]+test[9950:10000]')
  assert (spec.num_train_examples, spec.num_validation_examples) == (50, 100)


@pytest.mark.parametrize('field, value, reason', [
    ('train_split', 'validation', "is not a split of digits: Unknown split 'validation'"),
    ('train_split', 'train[:abc]', "is not a split of digits: Error parsing split"),
    ('train_split', 'train[:2000]', 'is not a split of digits: Requested slice [:2000]'),
    ('test_split', 'test[10:5]', 'selects no examples of digits'),
])
def test_bad_split_is_a_one_line_config_error_naming_it(field, value, reason):
  with pytest.raises(ConfigError) as error:
    dataset_spec(dataset_defaults(**{field: value}))
  message = str(error.value)
  assert message.startswith(f'dataset.{field}') and reason in message and '\n' not in message
  assert repr(value) in message


def test_configured_splits_read_exactly_the_examples_the_spec_counts(digits_data_dir):
  full = load_dataset_arrays(dataset_defaults(data_dir=digits_data_dir),
                             process_index=0, process_count=1)
  cfg = dataset_defaults(data_dir=digits_data_dir, train_split='train[:50%]',
                       test_split='test[-60:]', validation_size=100)
  spec, arrays = dataset_spec(cfg), load_dataset_arrays(cfg, process_index=0, process_count=1)
  assert spec.num_train_examples + spec.num_validation_examples == 718  # TFDS rounds 718.5
  assert (len(arrays.train.labels), len(arrays.validation.labels),
          len(arrays.test.labels)) == (spec.num_train_examples, 100, 60)
  np.testing.assert_array_equal(
      np.concatenate([arrays.train.images, arrays.validation.images]), full.train.images[:718])
  np.testing.assert_array_equal(arrays.test.images, full.test.images[-60:])


def test_unknown_dataset_name_is_a_config_error_naming_it():
  with pytest.raises(ConfigError, match="unknown dataset.name 'imagenette'"):
    check_dataset_available(dataset_defaults('imagenette'))


def test_validation_size_outside_the_training_split_is_a_config_error():
  with pytest.raises(ConfigError, match='validation_size .* got 1437'):
    dataset_spec(dataset_defaults(validation_size=1437))


def test_unprepared_dataset_without_manual_dir_fails_at_once_without_download(
    tmp_path, no_download):
  cfg = dataset_defaults('mnist', data_dir=str(tmp_path))
  with pytest.raises(ConfigError) as error:
    load_dataset_arrays(cfg, process_index=0, process_count=1)
  message = str(error.value)
  assert '\n' not in message
  assert "'mnist' is not prepared" in message and 'dataset.manual_dir' in message
  assert all(name in message for name in MNIST_FILES)


def test_manual_dir_that_is_not_a_directory_is_rejected_naming_it(tmp_path, no_download):
  not_a_dir = tmp_path / 'train-images-idx3-ubyte.gz'
  not_a_dir.write_bytes(b'')
  for path in (str(not_a_dir), str(tmp_path / 'missing')):
    with pytest.raises(ConfigError, match=f'dataset.manual_dir {path!r} is not a directory'):
      check_dataset_available(dataset_defaults('mnist', data_dir=str(tmp_path), manual_dir=path))


def test_manual_dir_without_the_archives_names_the_missing_files(tmp_path, no_download):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / MNIST_FILES[0]).write_bytes(b'')
  cfg = dataset_defaults('mnist', data_dir=str(tmp_path), manual_dir=str(manual))
  with pytest.raises(ConfigError, match=f'lacks {", ".join(MNIST_FILES[1:])} needed'):
    check_dataset_available(cfg)


def test_manual_dir_with_a_corrupt_archive_is_a_one_line_error_naming_it(tmp_path, no_download):
  manual = tmp_path / 'manual'
  manual.mkdir()
  for name in MNIST_FILES:
    (manual / name).write_bytes(b'')
  cfg = dataset_defaults('fashion_mnist', data_dir=str(tmp_path), manual_dir=str(manual))
  with pytest.raises(ConfigError, match=r"^dataset.manual_dir '.*': \S+-ubyte.gz is corrupt "
                                        r'\(sha256 e3b0c44298fc…, 0 bytes; TFDS expects '):
    check_dataset_available(cfg)


def test_validation_carving_is_disjoint_sized_and_deterministic(digits_data_dir):
  full = load_dataset_arrays(dataset_defaults(data_dir=digits_data_dir),
                             process_index=0, process_count=1)
  cfg = dataset_defaults(data_dir=digits_data_dir, validation_size=237)
  carved = load_dataset_arrays(cfg, process_index=0, process_count=1)
  again = load_dataset_arrays(cfg, process_index=0, process_count=1)
  assert len(carved.train.labels) == 1200 and len(carved.validation.labels) == 237
  # Train then validation is the full training split, in order: a partition of it.
  np.testing.assert_array_equal(
      np.concatenate([carved.train.images, carved.validation.images]), full.train.images)
  np.testing.assert_array_equal(
      np.concatenate([carved.train.labels, carved.validation.labels]), full.train.labels)
  np.testing.assert_array_equal(carved.validation.images, again.validation.images)
  np.testing.assert_array_equal(carved.test.labels, full.test.labels)
  assert len(set(carved.validation.labels)) == 10  # a random sample, not one class


def test_each_process_reads_its_own_slice_of_every_split(digits_data_dir):
  cfg = dataset_defaults(data_dir=digits_data_dir, validation_size=100)
  whole = load_dataset_arrays(cfg, process_index=0, process_count=1)
  parts = [load_dataset_arrays(cfg, process_index=i, process_count=3) for i in range(3)]
  # Training slices are equal (remainder dropped) so every process runs equal epochs.
  assert {len(p.train.labels) for p in parts} == {1337 // 3}
  np.testing.assert_array_equal(np.concatenate([p.train.labels for p in parts]),
                                whole.train.labels[:3 * (1337 // 3)])
  # Evaluation slices keep every example.
  for split in ('validation', 'test'):
    np.testing.assert_array_equal(
        np.concatenate([getattr(p, split).images for p in parts]), getattr(whole, split).images)
