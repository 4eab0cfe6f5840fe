"""A workdir proved usable before any compute: created, written, read back and cleaned,
within a time bound, every failure one ``ConfigError`` line naming it; and moved aside
for ``--restart`` under the lock of every run in it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import itertools
import os
import threading
import uuid
from typing import Callable

from lr_study.errors import ConfigError
from lr_study.runtime import run_files
from lr_study.runtime.lock import LOCK, RunLock
from lr_study.runtime.run_files import (_BROKEN_URL, _local, gfile, exists, isdir, make_dirs,
                                        read_bytes, remove, scheme, write_atomic)

# What a run directory holds (lr_study.runtime.run_dir); one of them marks one.
RUN_ENTRIES = frozenset({LOCK, run_files.METRICS, run_files.TRAIN_LOG, run_files.EVENTS,
                         run_files.METADATA, run_files.PLAN, run_files.SUMMARY,
                         run_files.CHECKPOINTS})

CHECK_TIMEOUT_S = 30.0  # how long a filesystem may take to answer the probe
CHECKPOINT_SCHEMES = (None, 'gs')  # where orbax writes checkpoints (None: a local path)


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return (text[0] if text else type(error).__name__)[:200]


def _probe(path: str) -> None:
  """Creates ``path`` and writes, reads back and deletes a file in it."""
  if exists(path) and not isdir(path):
    raise NotADirectoryError('it is a file, not a directory')
  make_dirs(path)
  if not isdir(path):
    raise NotADirectoryError('it is not a directory')
  probe = os.path.join(path, f'.probe-{os.getpid()}-{uuid.uuid4().hex[:8]}')
  data = b'lr_study probe\n'
  write_atomic(probe, data)
  try:
    if read_bytes(probe) != data:
      raise OSError('a file written there read back different')
  finally:
    remove(probe)


def _run_bounded(fn: Callable[[], None], timeout_s: float) -> None:
  """Runs ``fn`` in a daemon thread; TimeoutError if it has not returned in time."""
  future: concurrent.futures.Future[None] = concurrent.futures.Future()

  def target() -> None:
    try:
      fn()
      future.set_result(None)
    except BaseException as e:  # pylint: disable=broad-except
      future.set_exception(e)

  threading.Thread(target=target, daemon=True, name='check_workdir').start()
  future.result(timeout=timeout_s)


def check_checkpoint_filesystem(path: str | os.PathLike[str], what: str = 'run directory'
                                ) -> None:
  """A one-line ConfigError naming ``path`` unless orbax writes checkpoints there: a
  local path or ``gs://`` (etils.epath and tensorstore know no other)."""
  if scheme(path) not in CHECKPOINT_SCHEMES:
    raise ConfigError(f'{what} {os.fspath(path)!r}: orbax writes checkpoints on local paths '
                      'and gs:// only')


def check_workdir(path: str | os.PathLike[str], timeout_s: float = CHECK_TIMEOUT_S,
                  flag: str = '--workdir', checkpoints: bool = False) -> str:
  """Proves ``path`` a usable directory (created if absent, written and read back) and
  returns it; otherwise a one-line ConfigError naming it.

  Refused: an empty path, a URL whose scheme TensorFlow's gfile has no filesystem for,
  a broken URL such as ``gs:/bucket`` (which would become a local folder ``gs:``), a
  file, an unwritable or unreachable place, and a filesystem that has not answered
  within ``timeout_s`` seconds (e.g. ``gs://`` where network or credentials are missing
  and the client retries); the probe's thread is then abandoned. With ``checkpoints``
  (a study's workdir), a URL orbax writes no checkpoints on (any but ``gs://``).
  """
  path = os.fspath(path)
  if not path:
    raise ConfigError(f'{flag} is empty')
  kind = scheme(path)
  if kind is None:
    broken = _BROKEN_URL.match(path)
    if broken and len(broken.group(1)) > 1:  # not a drive letter
      raise ConfigError(f'{flag} {path!r} is not a URL (a scheme needs "://") nor a '
                        'plain local path')
  else:
    supported = sorted(s for s in gfile().get_registered_schemes() if s not in ('', 'file'))
    if kind not in supported:
      listed = [s for s in supported if not checkpoints or s in CHECKPOINT_SCHEMES]
      raise ConfigError(f'{flag} {path!r}: no filesystem for scheme {kind!r} (supported: '
                        f'{", ".join(s + "://" for s in listed)} and local paths)')
    if checkpoints:
      check_checkpoint_filesystem(path, flag)
  try:
    _run_bounded(lambda: _probe(path), timeout_s)
  except concurrent.futures.TimeoutError:
    raise ConfigError(f'{flag} {path!r} did not answer within {timeout_s:g} s '
                      '(no network or credentials?)') from None
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f'{flag} {path!r} is not a usable directory: {_first_line(e)}') from None
  return path



def _run_dirs(workdir: str) -> list[str]:
  """Every run directory under ``workdir``, relative to it ('' for ``workdir`` itself);
  checkpoint folders are not looked into."""
  local = scheme(workdir) is None
  top = _local(workdir) if local else workdir
  found = []
  for directory, dirs, names in os.walk(top) if local else gfile().walk(top):
    if RUN_ENTRIES & {name.rstrip('/') for name in [*dirs, *names]}:
      found.append(os.path.relpath(directory, top) if directory != top else '')
    dirs[:] = [d for d in dirs if d.rstrip('/') != run_files.CHECKPOINTS]
  return sorted(found)


def move_aside(workdir: str) -> str | None:
  """``--restart``: moves ``workdir`` to ``<workdir>.old-<time>`` and returns that path
  (None for an absent or empty workdir); nothing is deleted.

  Every run directory in it is locked (``lr_study.runtime.lock``) while it moves, so a run
  still training there is never moved from under itself: a one-line ConfigError naming it
  and its holder instead, with nothing moved.
  """
  if not run_files.listdir(workdir):
    return None
  old = stamp = f'{workdir.rstrip("/")}.old-{datetime.datetime.now():%Y%m%d-%H%M%S}'
  for i in itertools.count(2):  # two restarts within a second
    if not exists(old):
      break
    old = f'{stamp}-{i}'
  with contextlib.ExitStack() as held:
    runs = {rel: RunLock(os.path.join(workdir, rel)) for rel in _run_dirs(workdir)}
    for lock in runs.values():
      try:
        held.enter_context(lock)
      except ConfigError as e:
        raise ConfigError(f'--restart: {e}; stop that run first') from None
    run_files.rename(workdir, old)
    for rel, lock in runs.items():
      lock.moved_to(os.path.join(old, rel))
  return old
