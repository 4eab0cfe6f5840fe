"""What each dataset is, known without touching its files (for the dry run and the plan).

Per-channel mean and std are those of the full TFDS training split with pixels scaled to
[0, 1] (population std over all pixels of a channel), the values torchvision recipes use:
MNIST 0.1307/0.3081 (PyTorch's MNIST example), CIFAR-10 (0.4914, 0.4822, 0.4465)/
(0.2470, 0.2435, 0.2616) (Zagoruyko & Komodakis 2016 normalize the same way). The digits
values are computed over the 1437 training images of ``lr_study_digits``; the tests check
the MNIST and digits values against the data. A carved validation split does not change
them, so train, validation and test are always normalized alike.

Splits are TFDS split strings from the config, ``dataset.train_split`` (default
``'train'``) and ``dataset.test_split`` (default ``'test'``), e.g. ``'train[:10%]'`` or
``'train[:5000]+test[:1000]'``. They are resolved by TFDS's own parser
(``tfds.core.ReadInstruction``, percent boundaries rounded as TFDS rounds them) against
the known split sizes, so the sizes are exact before any file is read. A validation split
of ``dataset.validation_size`` examples is carved from the end of the training split.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lr_study.errors import ConfigError


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


_MNIST_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
                't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')

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


SplitRange = tuple[str, int, int]  # (TFDS split name, start, stop)


def resolve_split(field: str, value: str, dataset: str, sizes: dict[str, int]
                  ) -> tuple[SplitRange, ...]:
  """The absolute ranges that TFDS split string ``value`` reads, concatenated in order.

  Raises:
    ConfigError: naming ``dataset.<field>`` when ``value`` is not a split string of the
      splits ``sizes`` names, or selects no example.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (no TensorFlow)
  infos = {name: tfds.core.SplitInfo(name=name, shard_lengths=[size], num_bytes=0)
           for name, size in sizes.items()}
  try:
    absolute = tfds.core.ReadInstruction.from_spec(value).to_absolute(infos)
  except ValueError as e:
    reason = (str(e).splitlines() or [type(e).__name__])[0]
    raise ConfigError(f'dataset.{field} {value!r} is not a split of {dataset}: {reason}'
                      ) from None
  ranges = tuple((a.splitname, a.from_ or 0, sizes[a.splitname] if a.to is None else a.to)
                 for a in absolute)
  ranges = tuple(r for r in ranges if r[2] > r[1])
  if not ranges:
    raise ConfigError(f'dataset.{field} {value!r} selects no examples of {dataset}')
  return ranges


def cut_ranges(ranges: tuple[SplitRange, ...], start: int, stop: int
               ) -> tuple[SplitRange, ...]:
  """Positions ``[start, stop)`` of the concatenation of ``ranges``, as ranges."""
  cut, offset = [], 0
  for name, first, end in ranges:
    lo, hi = max(first, first + start - offset), min(end, first + stop - offset)
    if lo < hi:
      cut.append((name, lo, hi))
    offset += end - first
  return tuple(cut)


def split_string(ranges: tuple[SplitRange, ...]) -> str:
  """The TFDS split string of ``ranges``: ``'train[0:5400]+test[0:100]'``."""
  return '+'.join(f'{name}[{start}:{stop}]' for name, start, stop in ranges)


def num_examples(ranges: tuple[SplitRange, ...]) -> int:
  return sum(stop - start for _, start, stop in ranges)


def dataset_spec(dataset_cfg: Any) -> DatasetSpec:
  """The spec of ``config.dataset``; validates the config, reads no data.

  Raises:
    ConfigError: unknown name, a split that is not a split of the dataset, or a
      validation size not below the training split's (``lr_study.config.check`` checks
      the types and the mode).
  """
  name = dataset_cfg.name
  if name not in _KNOWN:
    raise ConfigError(f'unknown dataset.name {name!r} (known: {", ".join(_KNOWN)})')
  tfds_name, train, test, shape, classes, mean, std, files = _KNOWN[name]
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
