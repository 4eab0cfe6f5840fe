"""One run's directory: its logs, its whole files and its checkpoints, written by one process.

``WORKDIR/<variant>/seed_<k>/`` holds ``metrics.jsonl`` (one line per evaluation),
``train_log.jsonl`` (every ``train_log_every_updates`` updates), ``schedule_events.jsonl``
(every change a dynamic schedule makes), ``metadata.json``, ``plan.json``,
``summary.json`` (``lr_study.runtime.run_files``) and the checkpoints, through the one
orbax manager the run directory opens for the run (``checkpoints``, a
``lr_study.training.checkpoint.Checkpoints``). On several processes only process 0 writes
(``lr_study.runtime.hosts``); the others write nowhere and open no checkpoints. The writer
holds the directory's lock (``lr_study.runtime.lock``) while the run is open: a second run
into it is refused. Every record is strict JSON; a non-finite value is written as null and
named in the record's ``non_finite`` field.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from lr_study.errors import ConfigError
from lr_study.runtime import hosts, resume, run_files, strict_json
from lr_study.runtime.lock import RunLock
from lr_study.runtime.resume import check_resumable
from lr_study.runtime.tensorboard import EventWriter
from lr_study.training.checkpoint import KEEP, Checkpoints

LOGS = (run_files.METRICS, run_files.TRAIN_LOG, run_files.EVENTS)


class RunDirectory:
  """The files of one run; every write is a no-op on processes other than 0."""

  def __init__(self, path: str, keep_checkpoints: int = KEEP):
    self.path = path
    self.writer = hosts.is_writer()
    self._logs: dict[str, run_files.JsonlWriter] = {}
    self._lines: dict[str, int] = {}
    self._events: EventWriter | None = None
    self._lock = RunLock(path) if self.writer else None
    self._keep = keep_checkpoints
    self.checkpoints: Checkpoints | None = None  # the writer's, while the run is open

  def __enter__(self) -> 'RunDirectory':
    if self.writer:  # a filesystem orbax does not write is refused before the lock
      self.checkpoints = Checkpoints(self.path, self._keep)
    if self._lock:
      try:
        self._lock.acquire()
      except BaseException:
        self.checkpoints.close()
        raise
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()
    if self.checkpoints:
      self.checkpoints.close()
      self.checkpoints = None
    if self._lock:
      self._lock.release()

  def read_json(self, name: str) -> Any:
    """Process 0's copy of ``name`` (None if absent), on every process."""
    path = self.file(name)
    return hosts.from_writer(run_files.read_json(path) if self.writer and run_files.exists(path)
                             else None)

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def _check(self, check: Callable[[], None]) -> None:
    """``check`` on process 0, its ConfigError raised on every process."""
    error = None
    if self.writer:
      try:
        check()
      except ConfigError as e:
        error = str(e)
    error = hosts.from_writer(error)
    if error:
      raise ConfigError(error)

  def check_config(self, config: Any) -> None:
    """Whether this run may go on under ``config`` (``resume.check_resumable``)."""
    self._check(lambda: check_resumable(self.path, config))

  def check_logs(self, lines: dict[str, int] | None, update: int) -> None:
    """Whether every log holds the ``lines`` its checkpoint of ``update`` counted
    (``resume.check_logs``)."""
    self._check(lambda: resume.check_logs(self.path, lines, update))

  def open_logs(self, update: int, lines: dict[str, int] | None,
                hparams: dict[str, Any]) -> None:
    """Opens the logs for appending, each cut first to the ``lines[name]`` records it had
    when the checkpoint of ``update`` was saved (a resume continues them exactly; a fresh
    start, ``lines`` None, empties them), and the TensorBoard events
    (``lr_study.runtime.tensorboard``) with the run's ``hparams``."""
    for name in LOGS:
      keep = (lines or {}).get(name, 0)
      if self.writer:
        records = run_files.read_jsonl(self.file(name), first=keep)
        run_files.write_atomic(self.file(name), ''.join(strict_json.dumps(r) + '\n' for r in records))
      self._logs[name] = run_files.JsonlWriter(self.file(name) if self.writer else os.devnull)
      self._lines[name] = keep
    self._events = EventWriter(self.path if self.writer else None, hparams, start_step=update + 1)

  def log(self, name: str, record: dict[str, Any]) -> None:
    """Appends ``record`` to log ``name``; an evaluation goes to TensorBoard too."""
    self._logs[name].write(strict_json.mark_non_finite(record))
    self._lines[name] += 1
    if name == run_files.METRICS:
      self._events.scalars(record['update'], record)

  def lines(self) -> dict[str, int]:
    """Records written to each log so far (a checkpoint keeps them, for ``open_logs``)."""
    return dict(self._lines)

  def write_json(self, name: str, obj: Any) -> None:
    if self.writer:
      run_files.write_json(self.file(name), obj)

  def last_metrics(self) -> dict[str, Any]:
    """The last evaluation, read by process 0 and shared with every process."""
    return hosts.from_writer(run_files.read_jsonl(self.file(run_files.METRICS))[-1]
                             if self.writer else None)

  def remove(self, name: str) -> None:
    if self.writer:
      run_files.remove(self.file(name))

  def close(self) -> None:
    for log in self._logs.values():
      log.close()
    self._logs = {}
    if self._events:
      self._events.close()
      self._events = None
