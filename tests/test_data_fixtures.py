"""Shared helpers of the data tests: dataset configs and a digits TFDS data_dir.

Test modules import ``digits_data_dir`` from here; it is prepared once in the session's
temporary directory (TFDS reuses a prepared dataset, so later modules find it ready).
"""

from __future__ import annotations

from typing import Any

import ml_collections
import pytest

from lr_study.data.sources import prepare_dataset


def dataset_config(name: str = 'digits', **overrides: Any) -> ml_collections.ConfigDict:
  """A ``config.dataset`` with the schema's defaults and ``overrides``."""
  cfg = ml_collections.ConfigDict(dict(
      name=name, data_dir='', manual_dir='', validation_size=0, mode='in_memory',
      augment=False, eval_batch_size=1000))
  cfg.update(overrides)
  return cfg


@pytest.fixture(scope='session')
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
  """A TFDS data_dir holding the prepared ``lr_study_digits/digits``."""
  data_dir = str(tmp_path_factory.getbasetemp() / 'tfds_digits')
  prepare_dataset(dataset_config(data_dir=data_dir))
  return data_dir
