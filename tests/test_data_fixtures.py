"""Shared helper of the data tests: dataset configs with the schema's defaults."""

from __future__ import annotations

from typing import Any

import ml_collections


def dataset_config(name: str = 'digits', **overrides: Any) -> ml_collections.ConfigDict:
  """A ``config.dataset`` with the schema's defaults and ``overrides``."""
  cfg = ml_collections.ConfigDict(dict(
      name=name, data_dir='', manual_dir='', validation_size=0, mode='in_memory',
      augment=False, eval_batch_size=1000, download=False))
  cfg.update(overrides)
  return cfg
