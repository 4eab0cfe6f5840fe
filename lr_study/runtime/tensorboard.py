"""TensorBoard event files of a run: every metrics.jsonl field, and the run's hyperparameters.

``WORKDIR/<variant>/seed_<k>/`` gets the event file, so ``tensorboard --logdir WORKDIR``
(or ``%tensorboard`` in a notebook) shows each run by its variant and seed. Each
evaluation writes one scalar per numeric field of its metrics line, at step = the update
count; the hyperparameters (the run's config, flattened) go in once, through the HParams
plugin, so runs can be filtered and compared by them. TensorFlow writes the files
(``tf.summary``), on any filesystem it supports (local, ``gs://``).
"""

from __future__ import annotations

import math
from typing import Any

from lr_study.data.sources import import_tfds


def _flat(tree: Any, prefix: str = '') -> dict[str, Any]:
  """``{'a.b': v}`` for every leaf of nested dicts; sequences as text."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flat(value, f'{prefix}{key}.' if isinstance(value, dict) else f'{prefix}{key}'))
    return out
  if isinstance(tree, (bool, int, float, str)):
    return {prefix: tree}
  return {prefix: str(tree)}


class EventWriter:
  """Writes one run's scalars and hyperparameters (a no-op when ``path`` is None)."""

  def __init__(self, path: str | None, hparams: dict[str, Any]):
    self._writer = None
    if path is None:
      return
    import_tfds()  # TensorFlow, off the GPUs and quiet
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    self._tf = tf
    self._writer = tf.summary.create_file_writer(path)
    with self._writer.as_default():
      hp.hparams(_flat(hparams), trial_id=path)

  def scalars(self, step: int, record: dict[str, Any]) -> None:
    """One scalar per finite number of ``record`` (bools and text are left out)."""
    if self._writer is None:
      return
    with self._writer.as_default():
      for key, value in record.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
          self._tf.summary.scalar(key, value, step=step)
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
