"""Orbax, quiet: a damaged checkpoint costs the loop one line (the exception orbax raises,
which ``lr_study.training.checkpoint`` words), not orbax's log records nor tracebacks of
the reads it abandoned. Two means, no patch of asyncio or of any hook:

* :func:`quiet`: orbax logs through absl logging ("Failed to read Metadata file" is an
  ERROR record); around each orbax call absl's verbosity is FATAL, then what it was.
* :data:`REGISTRY`: orbax's type handlers with a NumPy handler that lets every array read
  of a restore finish before it raises the first failure. Orbax's own gathers the reads
  and raises at the first failure, then closes its event loop while tensorstore still
  completes the others; each completion then prints "RuntimeError: Event loop is closed"
  from tensorstore's thread, and no log level reaches that.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterator, Sequence

from absl import logging
import numpy as np
import orbax.checkpoint as ocp


@contextlib.contextmanager
def quiet() -> Iterator[None]:
  """``with quiet(): ...``: orbax calls without orbax's log lines (absl verbosity FATAL)."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.FATAL)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


class DrainedNumpyHandler(ocp.type_handlers.NumpyHandler):
  """Orbax's NumPy handler, each array read on its own and all awaited before a failure
  is raised: a failed restore leaves no read in flight."""

  async def deserialize(self, infos: Sequence[Any], args: Sequence[Any] | None = None
                        ) -> list[np.ndarray]:
    args = args or [ocp.RestoreArgs()] * len(infos)
    reads = await asyncio.gather(
        *(super(DrainedNumpyHandler, self).deserialize([info], [arg])
          for info, arg in zip(infos, args)), return_exceptions=True)
    for read in reads:
      if isinstance(read, BaseException):
        raise read
    return [read[0] for read in reads]


# Every leaf of a saved train state is a NumPy array (0-d for scalars).
REGISTRY = ocp.type_handlers.create_type_handler_registry((np.ndarray, DrainedNumpyHandler()))
