"""One process at a time in a run directory.

``RunLock(run_dir)`` (a context manager) holds ``run_dir/lock.json``, which names its
holder: pid, host, the process's start time and when it took the lock. A second
process gets a one-line ConfigError naming the directory and the holder; a lock whose
holder has died is taken over (``RunLock.taken_over`` names the dead holder).

* **Local paths**: an exclusive ``fcntl.flock`` on the lock file, held while the run
  lasts. The kernel releases it when the process ends, however it ends, so a lock file
  left by a killed run is stale by construction and the next run takes it over. Where
  the filesystem has no ``flock``, the URL rule below applies.
* **URLs** (``gs://``, ``ram://``): no filesystem lock exists there, so the lock file
  alone decides: a lock of a process on this host that is no longer running (its pid
  gone, or reused by a process started at another time) is taken over; any other is
  held. Two processes starting at the same instant can both pass the check (the lock is
  written, then read back: the later writer wins and the earlier one fails, except in a
  window of one read). A lock left on another host by a dead process cannot be told
  from a live one: the error says which file to delete.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
import uuid
from typing import Any

from lr_study.errors import ConfigError
from lr_study.runtime import run_files, strict_json

LOCK = 'lock.json'


@dataclasses.dataclass(frozen=True)
class Holder:
  """The process that holds (or held) a run directory's lock."""

  pid: int
  host: str
  since: str  # when it took the lock (UTC, ISO 8601)
  start: str | None  # the process's start time in clock ticks after boot (Linux), if known
  token: str  # unique per acquisition

  def describe(self) -> str:
    return f'pid {self.pid} on host {self.host} since {self.since}'

  def to_json(self) -> str:
    return strict_json.dumps(dataclasses.asdict(self)) + '\n'

  @classmethod
  def from_json(cls, data: bytes) -> Holder:
    """The holder recorded in ``data``; ValueError if it is not a lock's content."""
    try:
      fields = json.loads(data)
      return cls(pid=int(fields['pid']), host=str(fields['host']), since=str(fields['since']),
                 start=fields.get('start'), token=str(fields['token']))
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f'not a lock file: {e}') from None


def _process_start(pid: int) -> str | None:
  """When process ``pid`` started (field 22 of /proc/PID/stat), None if unknown."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _this_process() -> Holder:
  pid = os.getpid()
  since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  return Holder(pid=pid, host=socket.gethostname(), since=since, start=_process_start(pid),
                token=uuid.uuid4().hex)


def is_stale(holder: Holder) -> bool:
  """Whether ``holder`` is a process of this host that is no longer running (False for
  another host's: it cannot be checked from here)."""
  if holder.host != socket.gethostname():
    return False
  try:
    os.kill(holder.pid, 0)
  except ProcessLookupError:
    return True
  except PermissionError:  # another user's live process
    pass
  start = _process_start(holder.pid)
  return holder.start is not None and start is not None and start != holder.start


class RunLock:
  """Holds ``run_dir`` for this process: ``with RunLock(run_dir): ...``."""

  def __init__(self, run_dir: str):
    self.run_dir = os.fspath(run_dir)
    self.path = os.path.join(self.run_dir, LOCK)
    self.holder: Holder | None = None  # this process, while it holds the lock
    self.taken_over: Holder | None = None  # the dead holder whose lock was taken over
    self._fd: int | None = None

  def _held_error(self, holder: Holder | None) -> ConfigError:
    who = holder.describe() if holder else 'another process (its lock file names no holder)'
    hint = (f'; if that run is dead, delete {self.path}'
            if holder and holder.host != socket.gethostname() else '')
    return ConfigError(f'run_dir {self.run_dir} is in use by {who}{hint}')

  def acquire(self) -> RunLock:
    """Takes the lock; ConfigError naming the holder if another process has it."""
    if self.holder is not None:
      raise ConfigError(f'run_dir {self.run_dir} is already locked by this RunLock')
    run_files.make_dirs(self.run_dir)
    if run_files.scheme(self.path) is None and self._acquire_flock():
      return self
    self._acquire_by_file()
    return self

  def _acquire_flock(self) -> bool:
    """Takes the lock with flock; False where the filesystem has none."""
    for _ in range(10):  # a release may delete the file between our open and flock
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        os.close(fd)
        raise self._held_error(self._read_holder()) from None
      except OSError as e:
        os.close(fd)
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
          return False
        raise
      try:
        current = os.stat(self.path)
      except FileNotFoundError:
        current = None
      if current is None or current.st_ino != os.fstat(fd).st_ino:
        os.close(fd)  # we locked a file that was released and deleted meanwhile
        continue
      self.taken_over = self._read_holder()  # a lock file left by a dead process
      self.holder = _this_process()
      data = self.holder.to_json().encode()
      os.ftruncate(fd, 0)
      os.pwrite(fd, data, 0)
      os.fsync(fd)
      self._fd = fd
      return True
    raise ConfigError(f'run_dir {self.run_dir}: could not take {self.path} (it keeps '
                      'being replaced)')

  def _acquire_by_file(self) -> None:
    """Takes the lock where only the file can say who holds it."""
    if run_files.exists(self.path):
      holder = self._read_holder()
      if holder is None or not is_stale(holder):
        raise self._held_error(holder)
      self.taken_over = holder
    me = _this_process()
    run_files.write_atomic(self.path, me.to_json())
    if self._read_holder() != me:  # another process wrote its lock after ours
      raise self._held_error(self._read_holder())
    self.holder = me

  def _read_holder(self) -> Holder | None:
    try:
      data = run_files.read_bytes(self.path)
    except FileNotFoundError:
      return None
    try:
      return Holder.from_json(data)
    except ValueError:
      return None

  def moved_to(self, run_dir: str) -> None:
    """The directory was moved, this lock file with it, to ``run_dir`` while held (a
    flock stays on the moved file): ``release`` deletes the lock file there."""
    self.run_dir = os.fspath(run_dir)
    self.path = os.path.join(self.run_dir, LOCK)

  def release(self) -> None:
    """Gives the lock up and deletes its file (only if it is still this process's)."""
    if self.holder is None:
      return
    if self._fd is not None:
      try:
        os.remove(self.path)  # under the flock: nobody else holds this file
      except FileNotFoundError:
        pass
      os.close(self._fd)  # releases the flock
      self._fd = None
    elif self._read_holder() == self.holder:
      run_files.remove(self.path)
    self.holder = None

  def __enter__(self) -> RunLock:
    return self.acquire()

  def __exit__(self, *exc: Any) -> None:
    self.release()
