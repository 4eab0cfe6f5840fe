"""The files of a run directory, on any filesystem, written so that a kill leaves nothing
half-written.

Paths are local (``runs/x``, ``/abs/x``, ``file:///abs/x``) or URLs that TensorFlow's
``tf.io.gfile`` reads (``gs://bucket/x``; ``ram://x`` in the tests). Local files go
through ``os``; URLs through ``tf.io.gfile``, imported on first use only.

* **Whole files** (metadata, plan, summary, a manual LR request) are written to a
  temporary name beside their target and renamed over it. ``os.replace`` is atomic on
  POSIX, and ``ram://`` renames in one step too. Object stores (``gs://``, ``s3://``,
  ``az://``) have no atomic rename (a rename copies, then deletes), but an object
  upload is all or nothing: there the file is uploaded directly, and a reader sees the
  old or the new object, never a mix.
* **JSON-lines logs** take one ``write`` per record, flushed at once, where the
  filesystem appends (local files, ``ram://``); a kill can tear only the last line,
  which ``read_jsonl`` skips and a resumed run drops (``RunDirectory.open_logs``). Object
  stores cannot append: there each record rewrites the whole log (an atomic upload).
* **Strict JSON** (``lr_study.runtime.strict_json``): every file written here is RFC 8259
  JSON; a non-finite number becomes ``null``.

``lr_study.runtime.workdir.check_workdir`` proves a directory usable before any compute.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any, Callable


from lr_study.errors import ConfigError
from lr_study.runtime.quiet_tf import require
from lr_study.runtime.strict_json import dumps

METRICS = 'metrics.jsonl'  # one line per evaluation
TRAIN_LOG = 'train_log.jsonl'  # one line per `train_log_every_updates` updates
EVENTS = 'schedule_events.jsonl'  # every LR or batch-size change made at run time
METADATA = 'metadata.json'
PLAN = 'plan.json'
SUMMARY = 'summary.json'
CHECKPOINTS = 'checkpoints'  # orbax's step directories (lr_study.training.checkpoint)
STUDY_CONFIG = 'study_config.json'  # a study's config, in its workdir (lr_study.runner)

# Schemes whose "rename" is a copy and a delete, and which cannot append.
OBJECT_STORES = frozenset({'gs', 's3', 'az'})

_URL = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*)://')
_BROKEN_URL = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*):/?(?!/)')  # gs:/b, gs:b


# --- Paths on any filesystem -------------------------------------------------------------


def gfile() -> Any:
  """``tf.io.gfile`` (``lr_study.runtime.quiet_tf``), for URL paths only; where TensorFlow
  does not import, a one-line ConfigError."""
  return require('a URL path (gs://, ram://)').io.gfile


def scheme(path: str | os.PathLike[str]) -> str | None:
  """The URL scheme of ``path`` (``'gs'``, ``'ram'``), None for a local path."""
  match = _URL.match(os.fspath(path))
  if match is None or match.group(1).lower() == 'file':
    return None
  return match.group(1).lower()


def _local(path: str | os.PathLike[str]) -> str:
  """``path`` as a local filesystem path (``file://`` stripped)."""
  path = os.fspath(path)
  return path[len('file://'):] if path.lower().startswith('file://') else path


def exists(path: str | os.PathLike[str]) -> bool:
  """Whether a file or directory is at ``path``."""
  if scheme(path) is None:
    return os.path.exists(_local(path))
  return gfile().exists(os.fspath(path))


def isdir(path: str | os.PathLike[str]) -> bool:
  """Whether ``path`` is a directory."""
  if scheme(path) is None:
    return os.path.isdir(_local(path))
  return gfile().isdir(os.fspath(path))


def listdir(path: str | os.PathLike[str]) -> list[str]:
  """The names in directory ``path``, sorted; [] if there is no directory there."""
  if not isdir(path):
    return []
  if scheme(path) is None:
    return sorted(os.listdir(_local(path)))
  return sorted(name.rstrip('/') for name in gfile().listdir(os.fspath(path)))


def checkpoint_steps(run_dir: str | os.PathLike[str]) -> list[int]:
  """The steps named in ``run_dir``'s checkpoint directory, usable or not, oldest first."""
  return sorted(int(n) for n in listdir(os.path.join(run_dir, CHECKPOINTS)) if n.isdigit())


def not_directories(path: str | os.PathLike[str]) -> dict[str, str]:
  """The entries of directory ``path`` that are no directory, each with what it is: ``'a
  symbolic link'`` (to anything, or to nothing) or ``'a file'``."""
  found = {}
  for name in listdir(path):
    entry = os.path.join(os.fspath(path), name)
    if scheme(entry) is None and os.path.islink(_local(entry)):
      found[name] = 'a symbolic link'
    elif not isdir(entry):
      found[name] = 'a file'
  return found


def make_dirs(path: str | os.PathLike[str]) -> None:
  """Creates directory ``path`` and its parents (nothing if it exists)."""
  if scheme(path) is None:
    os.makedirs(_local(path), exist_ok=True)
  else:
    gfile().makedirs(os.fspath(path))


def modified_ns(path: str | os.PathLike[str]) -> int:
  """When file ``path`` was last modified, in nanoseconds since the epoch."""
  if scheme(path) is None:
    return os.stat(_local(path)).st_mtime_ns
  fs = gfile()
  if not fs.exists(os.fspath(path)):
    raise FileNotFoundError(os.fspath(path))
  return fs.stat(os.fspath(path)).mtime_nsec


def read_bytes(path: str | os.PathLike[str]) -> bytes:
  """The content of file ``path``; FileNotFoundError if there is none."""
  if scheme(path) is None:
    with open(_local(path), 'rb') as f:
      return f.read()
  fs = gfile()
  if not fs.exists(os.fspath(path)):
    raise FileNotFoundError(os.fspath(path))
  with fs.GFile(os.fspath(path), 'rb') as f:
    return f.read()


def remove(path: str | os.PathLike[str]) -> bool:
  """Deletes file ``path``; False if it was already gone."""
  try:
    if scheme(path) is None:
      os.remove(_local(path))
    else:
      fs = gfile()
      if not fs.exists(os.fspath(path)):
        return False
      fs.remove(os.fspath(path))
  except FileNotFoundError:
    return False
  return True


def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
  """Moves file ``src`` to ``dst``, replacing it (atomic locally and on ``ram://``)."""
  if scheme(src) is None:
    os.replace(_local(src), _local(dst))
  else:
    gfile().rename(os.fspath(src), os.fspath(dst), overwrite=True)


def _fsync_dir(directory: str) -> None:
  """Makes a rename in ``directory`` durable (where directories can be opened)."""
  try:
    fd = os.open(directory or '.', os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
  """Writes ``data`` to file ``path`` so that readers see the old or the new file whole.

  Locally and on filesystems that rename in one step: a temporary file beside ``path``,
  then a rename over it. On object stores: one upload, which is all or nothing.
  """
  data = data.encode() if isinstance(data, str) else data
  kind = scheme(path)
  if kind is None:
    path = _local(path)
    tmp = f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
      with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
    _fsync_dir(os.path.dirname(path))
    return
  fs, path = gfile(), os.fspath(path)
  if kind in OBJECT_STORES:
    with fs.GFile(path, 'wb') as f:
      f.write(data)
    return
  tmp = f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
  with fs.GFile(tmp, 'wb') as f:
    f.write(data)
  fs.rename(tmp, path, overwrite=True)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
  """Writes ``obj`` as strict, indented JSON, atomically."""
  write_atomic(path, dumps(obj, indent=2) + '\n')


def _parse(text: bytes | str, where: str) -> Any:
  """``text`` as JSON; a one-line ConfigError naming ``where`` if it is not."""
  try:
    return json.loads(text)
  except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
    raise ConfigError(f'{where} is not JSON: {str(e).splitlines()[0]}') from None


def read_json(path: str | os.PathLike[str]) -> Any:
  """The JSON value in file ``path``; a one-line ConfigError naming it if it is not JSON."""
  return _parse(read_bytes(path), os.fspath(path))


def read_jsonl(path: str | os.PathLike[str], first: int | None = None,
               warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
  """The complete records of a JSON-lines file, or its ``first`` ones; [] if there is no
  file.

  A torn last line (a write cut short by a kill) is skipped, and named to ``warn``. A
  complete line that is not a JSON object is a one-line ConfigError naming the file and
  the line: the log was damaged after it was written.
  """
  try:
    data = read_bytes(path)
  except FileNotFoundError:
    return []
  *lines, torn = data.split(b'\n')  # the part after the last newline is torn or empty
  records = []
  for number, line in enumerate(lines, 1):
    if first is not None and len(records) == first:
      return records
    if line.strip():
      record = _parse(line, f'{os.fspath(path)} line {number}')
      if not isinstance(record, dict):
        raise ConfigError(f'{os.fspath(path)} line {number} is not a JSON record: '
                          f'{line[:60].decode(errors="replace")!r}')
      records.append(record)
  if torn.strip() and warn is not None and (first is None or len(records) < first):
    warn(f'{os.fspath(path)} line {len(lines) + 1}: a torn last record, skipped')
  return records


class JsonlWriter:
  """Writes one strict JSON record per line: appended and flushed where the filesystem
  appends, otherwise (object stores) the whole log rewritten atomically per record."""

  def __init__(self, path: str | os.PathLike[str]):
    self.path = os.fspath(path)
    kind = scheme(self.path)
    self._lines: list[str] | None = None  # the log so far, where it is rewritten
    if kind is None:
      self._file = open(_local(self.path), 'a')
    elif kind in OBJECT_STORES:
      self._file = None
      self._lines = [dumps(r) + '\n' for r in read_jsonl(self.path)]
    else:
      self._file = gfile().GFile(self.path, 'a')

  def write(self, record: dict[str, Any]) -> None:
    line = dumps(record) + '\n'
    if self._lines is not None:
      self._lines.append(line)
      write_atomic(self.path, ''.join(self._lines))
    else:
      self._file.write(line)
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> JsonlWriter:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()
