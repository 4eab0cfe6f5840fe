"""TensorFlow, imported for what lr_study uses it for (reading datasets, writing TensorBoard
files): kept off the GPUs that JAX uses, its oneDNN kernels and C++ logs off."""

from __future__ import annotations

import functools
import os
from typing import Any


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
