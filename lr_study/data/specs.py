"""What each dataset is, known without touching its files (for the dry run and the plan);
``arrays``, your own data, reads its ``.npz`` file (``lr_study.data.local``) to know it.

Per-channel mean and std are those of the full TFDS training split with pixels scaled to
[0, 1] (population std over all pixels of a channel), the values torchvision recipes use:
MNIST 0.1307/0.3081 (PyTorch's MNIST example), CIFAR-10 (0.4914, 0.4822, 0.4465)/
(0.2470, 0.2435, 0.2616) (Zagoruyko & Komodakis 2016 normalize the same way). The digits
values are computed over the 1437 training images of ``lr_study_digits``; the tests check
the MNIST and digits values against the data. A carved validation split does not change
them, so train, validation and test are always normalized alike. For ``arrays`` they are
computed the same way from ``x_train``, and the classes are its largest label plus one.

Splits are TFDS split strings from the config, ``dataset.train_split`` (default
``'train'``) and ``dataset.test_split`` (default ``'test'``), e.g. ``'train[:10%]'`` or
``'train[:5000]+test[:1000]'``. They are resolved as TFDS resolves them
(``lr_study.data.splits``, percent boundaries rounded as TFDS rounds them) against the
known split sizes, so the sizes are exact before any file is read. A validation split of
``dataset.validation_size`` examples is carved from the end of the training split.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lr_study.data import local
from lr_study.data.splits import cut_ranges, num_examples, resolve_split, split_string
from lr_study.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Sizes and statistics of one configured dataset.

  Attributes:
    name: the config name ('digits', 'mnist', ..., 'arrays').
    tfds_name: the name ``tfds.builder`` knows it by (``''`` for ``arrays``).
    num_train_examples: training examples after carving the validation split (all
      processes together).
    num_validation_examples: ``dataset.validation_size`` (0 = no validation split).
    num_test_examples: examples of the test split.
    train_split, validation_split, test_split: the TFDS split strings that read them, in
      absolute form (``'train[0:54000]'``); ``validation_split`` is ``''`` when there is
      none.
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
  train_split: str
  validation_split: str
  test_split: str


_MNIST_FILES = tuple(f for files in local.IDX_FILES.values() for f in files)
ARRAYS = 'arrays'  # the dataset of an .npz file (lr_study.data.local.npz)

# name: (tfds_name, examples in TFDS's 'train', in 'test', image_shape, classes, mean, std,
#        manual files)
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


def stored_sizes(name: str) -> dict[str, int]:
  """Examples in each split of known dataset ``name`` as its source stores them."""
  return {'train': _KNOWN[name][1], 'test': _KNOWN[name][2]}


def _arrays_entry(path: str) -> tuple[Any, ...]:
  """The ``_KNOWN`` entry of the ``.npz`` file ``path``."""
  splits = local.npz(path)
  (train_images, train_labels), (_, test_labels) = splits['train'], splits['test']
  classes = int(max(train_labels.max(), test_labels.max())) + 1
  return ('', len(train_labels), len(test_labels), train_images.shape[1:], classes,
          *local.pixel_statistics(train_images), ())


def dataset_spec(dataset_cfg: Any) -> DatasetSpec:
  """The spec of ``config.dataset``; validates the config, reads no data but the
  ``.npz`` file of ``arrays``.

  Raises:
    ConfigError: unknown name, a split that is not a split of the dataset, a validation
      size not below the training split's (``lr_study.config.check`` checks the types and
      the mode), or for ``arrays`` a bad ``.npz`` file.
  """
  name = dataset_cfg.name
  if name == ARRAYS:
    entry = _arrays_entry(dataset_cfg.manual_dir)
  elif name in _KNOWN:
    entry = _KNOWN[name]
  else:
    raise ConfigError(f'unknown dataset.name {name!r} (known: {", ".join(_KNOWN)}, {ARRAYS})')
  tfds_name, train, test, shape, classes, mean, std, files = entry
  sizes = {'train': train, 'test': test}
  train_split = dataset_cfg.train_split
  train_ranges = resolve_split('train_split', train_split, name, sizes)
  test_ranges = resolve_split('test_split', dataset_cfg.test_split, name, sizes)
  train = num_examples(train_ranges)
  validation = dataset_cfg.validation_size
  if validation >= train:
    raise ConfigError(
        f'dataset.validation_size must be below {train} (the examples of '
        f'{name} {train_split!r}), got {validation!r}')
  carved = tuple(split_string(cut_ranges(train_ranges, start, stop))
                 for start, stop in ((0, train - validation), (train - validation, train)))
  return DatasetSpec(name, tfds_name, train - validation, validation, num_examples(test_ranges),
                     shape, classes, mean, std, files, carved[0], carved[1],
                     split_string(test_ranges))
