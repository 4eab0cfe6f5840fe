"""TensorBoard event files of a run: every metrics.jsonl field, and the run's hyperparameters.

``WORKDIR/<variant>/seed_<k>/`` gets the event file, so ``tensorboard --logdir WORKDIR``
(or ``%tensorboard`` in a notebook) shows each run by its variant and seed. Each
evaluation writes one scalar per numeric field of its metrics line, at step = the update
count; the hyperparameters (the run's config, flattened) go in once, through the HParams
plugin, so runs can be filtered and compared by them. The ``tensorboard`` package writes
the records, as ``tf.summary`` would (the same tags, steps and summary protos; scalars as
float32 tensors), without TensorFlow: into a plain file on a local path, through
``tf.io.gfile`` on a URL (``gs://``, ``ram://``).

Each session of a run marks its start with a ``SessionLog.START`` event, as TensorFlow's
supervisors did. A run that resumes from a checkpoint (or starts afresh in an old
directory) opens a new event file next to the old ones and logs its evaluations after
the checkpoint again; its START event, at the step it restarts from, makes TensorBoard's
loader drop every older event at that step or later ("orphaned" data,
``purge_orphaned_data``), so each evaluation is shown once, with the values of
metrics.jsonl. The step is ``start_step`` when the caller knows it (the first update after
the one the logs were cut to), else the step of the session's first evaluation, which is
the first evaluation after its checkpoint. TensorBoard ignores the first START event of a run, so
a restart writes two: event files of an earlier session without one are purged too.
"""

from __future__ import annotations

import glob
import itertools
import math
import numbers
import os
import socket
import time
from typing import Any

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.summary.writer.record_writer import RecordWriter

from lr_study.runtime import run_files

EVENT_FILE_PATTERN = 'events.out.tfevents.*'
_FILE_NUMBER = itertools.count()  # tells apart the files one process opens in a second


_local = run_files._local  # pylint: disable=protected-access  (file:// stripped)


def _event_files(path: str) -> list[str]:
  if run_files.scheme(path) is None:
    return glob.glob(os.path.join(_local(path), EVENT_FILE_PATTERN))
  return run_files.gfile().glob(os.path.join(path, EVENT_FILE_PATTERN))


def _new_event_file(path: str) -> Any:
  """A new event file in directory ``path``, named as TensorFlow names them, open for
  writing."""
  run_files.make_dirs(path)
  name = os.path.join(path, f'events.out.tfevents.{int(time.time()):010d}.'
                            f'{socket.gethostname()}.{os.getpid()}.{next(_FILE_NUMBER)}.v2')
  if run_files.scheme(path) is None:
    return open(_local(name), 'wb')
  return run_files.gfile().GFile(name, 'wb')


def _flat(tree: Any, prefix: str = '') -> dict[str, Any]:
  """``{'a.b': v}`` for every leaf of nested dicts; sequences as text."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flat(value, f'{prefix}{key}.' if isinstance(value, dict) else f'{prefix}{key}'))
    return out
  if isinstance(tree, (bool, int, float, str)):
    return {prefix: tree}
  return {prefix: str(tree)}


def _is_number(value: Any) -> bool:
  """A real number (``int``, ``float`` or a NumPy scalar of either), not a bool."""
  return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and np.ndim(value) == 0)


class EventWriter:
  """Writes one run's scalars and hyperparameters (a no-op when ``path`` is None).

  ``start_step``: the first step this session can write (one past the update the run
  resumes from), when known; events of an earlier session in ``path`` from that step on
  are superseded.
  """

  def __init__(self, path: str | None, hparams: dict[str, Any], start_step: int | None = None):
    self._writer: RecordWriter | None = None
    self._restart_pending = False
    if path is None:
      return
    earlier = run_files.exists(path) and bool(_event_files(path))
    self._writer = RecordWriter(_new_event_file(path))
    self._write(event_pb2.Event(file_version='brain.Event:2'))
    if not earlier:  # the run's first session
      self._session_start(start_step or 0)
    elif start_step is not None:
      self._session_start(start_step, restart=True)
    else:  # a restart from a step known at the first evaluation
      self._restart_pending = True
    self._write(event_pb2.Event(step=0, summary=hparams_summary.hparams_pb(
        _flat(hparams), trial_id=path)))
    self._writer.flush()

  def _write(self, event: event_pb2.Event) -> None:
    event.wall_time = time.time()
    self._writer.write(event.SerializeToString())

  def _session_start(self, step: int, restart: bool = False) -> None:
    """A ``SessionLog.START`` event at ``step`` (``tf.compat.v1.summary.FileWriter.
    add_session_log``'s event); on a ``restart``, older events at ``step`` or later are
    orphaned. TensorBoard takes a run's first START for its beginning, so a restart
    writes it twice, in case the earlier files hold none."""
    for _ in range(2 if restart else 1):
      self._write(event_pb2.Event(step=int(step), session_log=event_pb2.SessionLog(
          status=event_pb2.SessionLog.START)))

  def scalars(self, step: int, record: dict[str, Any]) -> None:
    """One scalar per finite real number of ``record``, Python's or NumPy's (bools and
    text are left out), at step ``step``."""
    if self._writer is None:
      return
    step = int(step)
    if self._restart_pending:
      self._session_start(step, restart=True)
      self._restart_pending = False
    for key, value in record.items():
      if _is_number(value) and math.isfinite(value):
        self._write(event_pb2.Event(step=step, summary=scalar_summary.scalar_pb(
            key, np.float32(value))))
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None
