"""What each dataset is, known without touching its files (for the dry run and the plan).

Per-channel mean and std are those of the full TFDS training split with pixels scaled to
[0, 1] (population std over all pixels of a channel), the values torchvision recipes use:
MNIST 0.1307/0.3081 (PyTorch's MNIST example), CIFAR-10 (0.4914, 0.4822, 0.4465)/
(0.2470, 0.2435, 0.2616) (Zagoruyko & Komodakis 2016 normalize the same way). The digits
values are computed over the 1437 training images of ``lr_study_digits``; the tests check
the MNIST and digits values against the data. A carved validation split does not change
them, so train, validation and test are always normalized alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lr_study.errors import ConfigError

MODES = ('in_memory', 'streaming')


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Sizes and statistics of one configured dataset.

  Attributes:
    name: the config name ('digits', 'mnist', ...).
    tfds_name: the name ``tfds.builder`` knows it by.
    num_train_examples: training examples after carving the validation split (all
      processes together).
    num_validation_examples: ``dataset.validation_size`` (0 = no validation split).
    num_test_examples: examples of the test split.
    image_shape: (height, width, channels).
    num_classes: number of labels.
    mean, std: per-channel statistics of pixels in [0, 1]; a batch is normalized as
      ``(x / 255 - mean) / std``.
    manual_files: the archive names TFDS's builder reads from a ``manual_dir``
      (empty for datasets that need no files).
  """

  name: str
  tfds_name: str
  num_train_examples: int
  num_validation_examples: int
  num_test_examples: int
  image_shape: tuple[int, int, int]
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  manual_files: tuple[str, ...]


_MNIST_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
                't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')

# name: (tfds_name, train, test, image_shape, classes, mean, std, manual files)
_KNOWN: dict[str, tuple[Any, ...]] = {
    'digits': ('lr_study_digits/digits', 1437, 360, (8, 8, 1), 10,
               (0.3054337,), (0.3759572,), ()),
    'mnist': ('mnist', 60000, 10000, (28, 28, 1), 10,
              (0.1306605,), (0.3081078,), _MNIST_FILES),
    'fashion_mnist': ('fashion_mnist', 60000, 10000, (28, 28, 1), 10,
                      (0.2860402,), (0.3530239,), _MNIST_FILES),
    'cifar10': ('cifar10', 50000, 10000, (32, 32, 3), 10,
                (0.4913997, 0.4821584, 0.4465309), (0.2470322, 0.2434851, 0.2615878),
                ('cifar-10-binary.tar.gz',)),
    'cifar100': ('cifar100', 50000, 10000, (32, 32, 3), 100,
                 (0.5070752, 0.4865489, 0.4409178), (0.2673343, 0.2564385, 0.2761505),
                 ('cifar-100-binary.tar.gz',)),
}


def dataset_spec(dataset_cfg: Any) -> DatasetSpec:
  """The spec of ``config.dataset``; validates the config, reads no data.

  Raises:
    ConfigError: unknown name or mode, a validation size outside [0, train size), or an
      eval batch size below 1.
  """
  name = dataset_cfg.name
  if name not in _KNOWN:
    raise ConfigError(f'unknown dataset.name {name!r} (known: {", ".join(_KNOWN)})')
  mode = dataset_cfg.get('mode', 'in_memory')
  if mode not in MODES:
    raise ConfigError(f'dataset.mode must be one of {", ".join(MODES)}, got {mode!r}')
  eval_batch_size = dataset_cfg.get('eval_batch_size', 1000)
  if not isinstance(eval_batch_size, int) or eval_batch_size < 1:
    raise ConfigError(
        f'dataset.eval_batch_size must be a positive integer, got {eval_batch_size!r}')
  tfds_name, train, test, shape, classes, mean, std, files = _KNOWN[name]
  validation = dataset_cfg.get('validation_size', 0)
  if not isinstance(validation, int) or not 0 <= validation < train:
    raise ConfigError(
        f'dataset.validation_size must be an integer in [0, {train}) for {name}, '
        f'got {validation!r}')
  return DatasetSpec(name, tfds_name, train - validation, validation, test, shape, classes,
                     mean, std, files)
