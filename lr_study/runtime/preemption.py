"""Preemption: a SIGTERM (a Colab runtime reset, a preemptible VM, a scheduler) asks the
running study to stop cleanly.

The training loop asks :meth:`Preemption.reached` after each dispatch, on every process;
where it is reached, the loop saves a checkpoint of that exact update and raises
:class:`Preempted`. The same command then resumes the run from that update, exactly.

* **One process**: while :class:`Preemption` is active, a SIGTERM only sets
  ``requested``, and the next dispatch reaches it. (Outside the main thread, where Python
  cannot install signal handlers, it does nothing.)
* **Several processes** (``jax.distributed``): each must stop after the same dispatch,
  though the signal may reach only one. That is orbax's preemption support
  (``orbax.checkpoint.multihost.reached_preemption``, what
  ``CheckpointManager.reached_preemption`` asks): jax's preemption sync manager catches
  the SIGTERM on the process it reaches, the processes agree through the coordination
  service on the next dispatch after the furthest one's, and each is told there. Its sync
  point is the furthest count plus one, so the count passed is the dispatches asked about
  so far, the same on every process. No Python handler is installed then: it would take
  the signal from jax's. That mechanism needs ``jax.distributed`` (it answers False
  without it), hence the handler for one process.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class Preempted(Exception):
  """The study stopped at a SIGTERM after saving its checkpoint; its message says where."""


def _processes() -> int:
  import jax  # pylint: disable=g-import-not-at-top  # launch.py imports Preempted early
  return jax.process_count()


class Preemption:
  """``with Preemption() as preemption: ... preemption.reached() ...``"""

  def __init__(self):
    self.requested = False  # a SIGTERM came (one process)
    self._previous: Any = None
    self._asked = 0  # reached() calls so far: the step count of jax's sync protocol

  def _handle(self, signum: int, frame: Any) -> None:
    del signum, frame
    self.requested = True

  def reached(self) -> bool:
    """Whether the run stops after the dispatch just made; asked after each dispatch, on
    every process."""
    if _processes() == 1:
      return self.requested
    from orbax.checkpoint import multihost  # pylint: disable=g-import-not-at-top
    self._asked += 1
    return multihost.reached_preemption(self._asked)

  def __enter__(self) -> 'Preemption':
    if threading.current_thread() is threading.main_thread() and _processes() == 1:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc: Any) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
