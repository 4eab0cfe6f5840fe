"""The XLA compiles of this process, counted by a ``jax.monitoring`` listener.

JAX records the event :data:`EVENT` (``jax._src.dispatch.BACKEND_COMPILE_EVENT``, whose
durations ``lr_study.runtime.progress`` sums) each time it hands a computation to XLA: a
jitted or pmapped function for a new shape, and every operation run op by op outside one
(a persistent-cache hit included). Importing this module registers a listener that
counts them from then on; ``lr_study.runner`` imports it before it builds anything, so
its final line reports the study's compiles."""

from __future__ import annotations

import jax

from lr_study.runtime.progress import COMPILE_EVENT as EVENT

_compiles = [0]


def _listener(event: str, duration_secs: float, **kwargs: str | int) -> None:
  del duration_secs, kwargs
  if event == EVENT:
    _compiles[0] += 1


jax.monitoring.register_event_duration_secs_listener(_listener)


def count() -> int:
  """XLA compiles since this module was first imported."""
  return _compiles[0]
