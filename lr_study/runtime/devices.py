"""Placing host values on the local devices for the ``jax.pmap`` steps.

``jax.pmap`` (built on ``shard_map`` since jax 0.7) traces again whenever an input's
sharding names a different mesh axis, so everything handed to a pmapped function is
placed here with one mesh whose axis is :data:`AXIS`, the pmap axis name. Outputs of
the pmapped functions carry the same sharding, so feeding them back never retraces.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = 'batch'


def _sharding() -> NamedSharding:
  return NamedSharding(Mesh(np.array(jax.local_devices()), (AXIS,)), PartitionSpec(AXIS))


def replicate(tree: Any) -> Any:
  """Copies every leaf to each local device: leaf shape ``s`` becomes ``[devices, *s]``."""
  n = jax.local_device_count()
  sharding = _sharding()
  return jax.tree.map(
      lambda x: jax.device_put(np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), sharding),
      tree)


def shard(tree: Any) -> Any:
  """Places leaves whose leading axis is the device axis, one slice per device."""
  sharding = _sharding()
  return jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), tree)


def unreplicate(tree: Any) -> Any:
  """The first device's copy of every leaf, as host NumPy arrays."""
  return jax.tree.map(lambda x: np.asarray(x[0]), tree)
