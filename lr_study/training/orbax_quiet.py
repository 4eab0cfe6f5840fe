"""Orbax, quiet: a corrupt checkpoint costs the loop one line, not orbax's log records and
the tracebacks of the asynchronous reads it abandons (``Event loop is closed``, ``Task
exception was never retrieved``). Used by ``lr_study.training.checkpoint`` around every
orbax call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import Any, Iterator


class _QuietLoop(asyncio.SelectorEventLoop):
  """An event loop of orbax's that stays silent about the work it abandoned.

  When one array of a restore fails to read, orbax's loop stops at the first error and
  is closed while tensorstore still completes the other reads; each completion then
  calls ``call_soon_threadsafe`` on the closed loop (a RuntimeError that tensorstore
  prints from its thread), and each failed sibling task, once collected, reports that
  its exception was never retrieved. Nobody waits for any of them: the restore has
  already failed with its first error, which the caller reports.
  """

  def __init__(self) -> None:
    super().__init__()
    self.set_exception_handler(_ignore_abandoned_tasks)

  def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> Any:
    if self.is_closed():
      return None
    try:
      return super().call_soon_threadsafe(callback, *args, context=context)
    except RuntimeError:
      if self.is_closed():  # closed in between
        return None
      raise


def _ignore_abandoned_tasks(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
  if loop.is_closed() or 'never retrieved' in context.get('message', ''):
    return
  loop.default_exception_handler(context)


class _QuietPolicy(asyncio.DefaultEventLoopPolicy):
  def new_event_loop(self) -> asyncio.AbstractEventLoop:
    return _QuietLoop()


class _DropOrbaxRecords(logging.Filter):
  """Drops the log records of orbax's modules."""

  def filter(self, record: logging.LogRecord) -> bool:
    return f'{os.sep}orbax{os.sep}' not in record.pathname


class _QuietOrbax:
  """``with quiet_orbax(): ...``: orbax calls without orbax's own log lines or the
  tracebacks of its abandoned reads; what fails reaches the caller as an exception, which
  this module turns into one line. Re-entrant; the first entry installs, the last exit
  restores."""

  def __init__(self) -> None:
    self._lock = threading.Lock()
    self._depth = 0
    self._previous_policy: asyncio.AbstractEventLoopPolicy | None = None
    self._filter = _DropOrbaxRecords()

  @contextlib.contextmanager
  def __call__(self) -> Iterator[None]:
    absl_logger = logging.getLogger('absl')
    with self._lock:
      self._depth += 1
      if self._depth == 1:
        self._previous_policy = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(_QuietPolicy())
        absl_logger.addFilter(self._filter)
    try:
      yield
    finally:
      with self._lock:
        self._depth -= 1
        if self._depth == 0:
          absl_logger.removeFilter(self._filter)
          asyncio.set_event_loop_policy(self._previous_policy)


quiet_orbax = _QuietOrbax()
