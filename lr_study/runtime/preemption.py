"""Preemption: a SIGTERM (a Colab runtime reset, a preemptible VM, a scheduler) asks the
running study to stop cleanly.

While :class:`Preemption` is active the signal only sets ``requested``; the training loop
looks at it after each dispatch, saves a checkpoint of that exact update and raises
:class:`Preempted`. The same command then resumes the run from that update, exactly.
Outside the main thread (where Python cannot install signal handlers) it does nothing.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class Preempted(Exception):
  """The study stopped at a SIGTERM after saving its checkpoint; its message says where."""


class Preemption:
  """``with Preemption() as preemption: ... preemption.requested ...``"""

  def __init__(self):
    self.requested = False
    self._previous: Any = None

  def _handle(self, signum: int, frame: Any) -> None:
    del signum, frame
    self.requested = True

  def __enter__(self) -> 'Preemption':
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc: Any) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
