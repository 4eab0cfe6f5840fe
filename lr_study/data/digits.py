"""scikit-learn's embedded handwritten digits, and their TFDS builder ``lr_study_digits/digits``.

The data are the 1797 8x8 images of the UCI "Optical Recognition of Handwritten Digits"
set (Alpaydin & Kaynak, 1998) that ship inside scikit-learn
(``sklearn.datasets.load_digits``), so the dataset is ready offline in about a second.

* Images: pixel counts 0..16 rescaled to uint8 as ``round(v * 255 / 16)``, shape (8, 8, 1).
* Labels: 0..9.
* Splits: a fixed stratified split (``lr_study.data.digits_split`` says how it was made):
  1437 train and 360 test examples, each class in the same proportion in both.

In memory, NumPy reads them (``lr_study.data.local.digits``, in the order TFDS stores
them); this builder serves streaming mode, which reads through tf.data. It is registered
under ``lr_study_digits`` (not ``digits``) so that it never clashes with a TFDS name;
importing this module registers it, after which ``tfds.builder('lr_study_digits/digits',
data_dir=...)`` finds it.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from lr_study.data.local import digits_by_key

NAME = 'lr_study_digits'
CONFIG = 'digits'


class LrStudyDigits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 handwritten digits, 1437 train / 360 test, 10 classes."""

  name = NAME
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Stratified 1437/360 split of sklearn load_digits, seed 0.'}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(
          name=CONFIG, description='8x8 grey images rescaled to 0..255, labels 0..9.'),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(8, 8, 1)),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://archive.ics.uci.edu/dataset/80',
        citation=(
            '@misc{alpaydin1998digits, author={Alpaydin, E. and Kaynak, C.}, '
            'title={Optical Recognition of Handwritten Digits}, year={1998}, '
            'howpublished={UCI Machine Learning Repository}}'),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Everything is inside scikit-learn.
    return {split: self._generate_examples(*arrays) for split, arrays in digits_by_key().items()}

  def _generate_examples(
      self, images: np.ndarray, labels: np.ndarray, keys: np.ndarray) -> Iterator[tuple[int, dict]]:
    for image, label, key in zip(images, labels, keys):
      yield int(key), {'image': image, 'label': int(label)}
