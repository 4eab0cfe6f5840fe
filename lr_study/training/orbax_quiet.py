"""Orbax, quiet: a damaged checkpoint costs the loop one line (the exception orbax raises,
which ``lr_study.training.checkpoint`` words), not orbax's log records nor tracebacks of
the reads and writes it abandoned. Two means, no patch of asyncio or of any hook:

* :data:`NO_ORBAX_RECORDS`, on absl's logger from the first import of this module: the
  records orbax's modules log ("Failed to read Metadata file" is an ERROR record) are
  dropped, from every thread. A save that fails raises at its first failure while
  orbax's other writer threads still run; one that fails later logs after the save has
  returned, so no switch around each orbax call could catch its record.
* :data:`REGISTRY`: orbax's type handlers with a NumPy handler that lets every array read
  of a restore, and every write of a save, finish before it raises the first failure.
  Orbax's own gathers them and raises at the first failure (a damaged file, a full disk),
  then closes its event loop while tensorstore still completes the others; each
  completion then prints "RuntimeError: Event loop is closed" from tensorstore's thread,
  and no log filter reaches that.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Iterable, Sequence

from absl import logging as absl_logging
import numpy as np
import orbax.checkpoint as ocp


class _NoOrbaxRecords(logging.Filter):
  """Drops the log records made in orbax's modules."""

  def __init__(self):
    super().__init__()
    self.orbax_dir = os.path.dirname(os.path.dirname(ocp.__file__)) + os.sep

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.pathname.startswith(self.orbax_dir)


NO_ORBAX_RECORDS = _NoOrbaxRecords()
absl_logging.get_absl_logger().addFilter(NO_ORBAX_RECORDS)


async def _all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
  """The results of ``awaitables``, run together; the first failure raised once all ended."""
  results = await asyncio.gather(*awaitables, return_exceptions=True)
  for result in results:
    if isinstance(result, BaseException):
      raise result
  return results


class DrainedNumpyHandler(ocp.type_handlers.NumpyHandler):
  """Orbax's NumPy handler, each array read or written on its own and all awaited before a
  failure is raised: a failed restore or save leaves no read or write in flight."""

  async def deserialize(self, infos: Sequence[Any], args: Sequence[Any] | None = None
                        ) -> list[np.ndarray]:
    args = args or [ocp.RestoreArgs()] * len(infos)
    parent = super()
    return [read for reads in await _all(parent.deserialize([info], [arg])
                                         for info, arg in zip(infos, args)) for read in reads]

  async def _background_serialize(self, values: Sequence[np.ndarray], infos: Sequence[Any],
                                  args: Sequence[Any] | None = None) -> None:
    # Orbax's private coroutine behind serialize, which gathers the writes of all arrays
    # (test_checkpoint fills a disk to see that none is left in flight).
    args = args or [ocp.SaveArgs()] * len(values)
    write = super()._background_serialize  # pylint: disable=protected-access
    await _all(write([value], [info], [arg]) for value, info, arg in zip(values, infos, args))


# Every leaf of a saved train state is a NumPy array (0-d for scalars).
REGISTRY = ocp.type_handlers.create_type_handler_registry((np.ndarray, DrainedNumpyHandler()))
