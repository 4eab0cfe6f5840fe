"""TensorFlow, optional, imported only for what needs it: TFDS datasets, streaming mode
(tf.data) and URL paths (``tf.io.gfile``). It is kept off the GPUs that JAX uses, its
oneDNN kernels and C++ logs off. Where it does not import, :func:`require` makes that one
line saying what needs it."""

from __future__ import annotations

import functools
import os
from typing import Any

from lr_study.errors import ConfigError


@functools.cache
def import_tensorflow() -> Any:
  """``tensorflow``, with no GPU visible to it and its logs quiet (``TF_CPP_MIN_LOG_LEVEL``
  is set on importing ``lr_study``, before JAX sets its own)."""
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF's devices were initialized elsewhere already; leave them.
    pass
  return tf


@functools.cache
def import_tfds() -> Any:
  """``tensorflow_datasets``, over the quiet TensorFlow of :func:`import_tensorflow`."""
  import_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def require(what: str, instead: str = '', tfds: bool = False) -> Any:
  """TensorFlow (``tfds``: TFDS, :func:`import_tfds`), or a one-line ConfigError: ``what``
  needs it; install the ``tfds`` extra or do ``instead``."""
  try:
    return import_tfds() if tfds else import_tensorflow()
  except ImportError as e:
    raise ConfigError(f'{what} needs {"TensorFlow Datasets" if tfds else "TensorFlow"}, which '
                      f'does not import here ({e}): pip install "lr_study[tfds]"'
                      f'{", or " + instead if instead else ""}') from None
