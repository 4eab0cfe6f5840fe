"""One study over several processes (the hosts of a TPU pod slice, or several GPU machines).

Every process runs the same loop on its own slice of the data; the pmapped steps'
collectives join their devices into one global batch. Outside the steps:

* **one writer**: process 0 alone writes the run directories (logs, plans, checkpoints,
  the study's table and figure), as in the Flax examples;
* **one decision**: what the host reads from files (a checkpoint to resume, a manual LR
  request, a finished run's last metrics) is read by process 0 and broadcast, so every
  process takes the same branch and dispatches the same steps. Each such call is a
  collective: all processes make it at the same point of the loop.

With one process everything here is the identity and costs nothing.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import jax
import numpy as np

T = TypeVar('T')


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None) -> None:
  """``jax.distributed.initialize``, before anything touches a device.

  Every argument may be None on Cloud TPU, SLURM, Open MPI and Kubernetes, which JAX
  detects. CPU devices talk to other processes through gloo.
  """
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def is_writer() -> bool:
  """Whether this process writes the run files: process 0."""
  return jax.process_index() == 0


def _broadcast(value: Any) -> Any:
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return multihost_utils.broadcast_one_to_all(value)


def from_writer(value: T) -> T:
  """Process 0's JSON-able ``value`` (``None`` included) on every process."""
  if jax.process_count() == 1:
    return value
  data = np.frombuffer(json.dumps(value).encode(), np.uint8) if is_writer() else None
  size = int(_broadcast(np.int64(0 if data is None else data.size)))
  data = _broadcast(np.zeros(size, np.uint8) if data is None else data)
  return json.loads(bytes(np.asarray(data, np.uint8)))


def arrays_from_writer(tree: T) -> T:
  """Process 0's pytree of arrays on every process (all pass a tree of the same shapes)."""
  if jax.process_count() == 1:
    return tree
  return jax.tree.map(np.asarray, _broadcast(tree))
