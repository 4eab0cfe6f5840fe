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
  which ``read_jsonl`` skips and a resumed run's ``truncate_jsonl`` drops. Object
  stores cannot append: there each record rewrites the whole log (an atomic upload).
* **Strict JSON**: every file written here is RFC 8259 JSON. A non-finite number
  (NaN, ±Infinity) becomes ``null``; ``non_finite`` names where, so a writer can record
  what the null means.

``check_workdir`` proves a directory usable (created, written, read back) before any
compute, within a time bound, and turns every failure into one ``ConfigError`` line.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import math
import os
import re
import threading
import uuid
from typing import Any, Callable, Iterable

import numpy as np

from lr_study.errors import ConfigError

METRICS = 'metrics.jsonl'  # one line per evaluation
TRAIN_LOG = 'train_log.jsonl'  # one line per `train_log_every_updates` updates
EVENTS = 'schedule_events.jsonl'  # every LR or batch-size change made at run time
METADATA = 'metadata.json'
PLAN = 'plan.json'
SUMMARY = 'summary.json'
CHECKPOINTS = 'checkpoints'  # orbax's step directories (lr_study.training.checkpoint)

# Schemes whose "rename" is a copy and a delete, and which cannot append.
OBJECT_STORES = frozenset({'gs', 's3', 'az'})
CHECK_TIMEOUT_S = 30.0  # check_workdir's bound on a remote filesystem's first answer

_URL = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*)://')
_BROKEN_URL = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*):/?(?!/)')  # gs:/b, gs:b


# --- Paths on any filesystem -------------------------------------------------------------


@functools.cache
def _gfile() -> Any:
  """``tf.io.gfile``, with TensorFlow kept off the GPUs that JAX uses, and quiet."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF's devices were initialized elsewhere already; leave them.
    pass
  return tf.io.gfile


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
  return _gfile().exists(os.fspath(path))


def isdir(path: str | os.PathLike[str]) -> bool:
  """Whether ``path`` is a directory."""
  if scheme(path) is None:
    return os.path.isdir(_local(path))
  return _gfile().isdir(os.fspath(path))


def make_dirs(path: str | os.PathLike[str]) -> None:
  """Creates directory ``path`` and its parents (nothing if it exists)."""
  if scheme(path) is None:
    os.makedirs(_local(path), exist_ok=True)
  else:
    _gfile().makedirs(os.fspath(path))


def modified_ns(path: str | os.PathLike[str]) -> int:
  """When file ``path`` was last modified, in nanoseconds since the epoch."""
  if scheme(path) is None:
    return os.stat(_local(path)).st_mtime_ns
  gfile = _gfile()
  if not gfile.exists(os.fspath(path)):
    raise FileNotFoundError(os.fspath(path))
  return gfile.stat(os.fspath(path)).mtime_nsec


def read_bytes(path: str | os.PathLike[str]) -> bytes:
  """The content of file ``path``; FileNotFoundError if there is none."""
  if scheme(path) is None:
    with open(_local(path), 'rb') as f:
      return f.read()
  gfile = _gfile()
  if not gfile.exists(os.fspath(path)):
    raise FileNotFoundError(os.fspath(path))
  with gfile.GFile(os.fspath(path), 'rb') as f:
    return f.read()


def remove(path: str | os.PathLike[str]) -> bool:
  """Deletes file ``path``; False if it was already gone."""
  try:
    if scheme(path) is None:
      os.remove(_local(path))
    else:
      gfile = _gfile()
      if not gfile.exists(os.fspath(path)):
        return False
      gfile.remove(os.fspath(path))
  except FileNotFoundError:
    return False
  return True


def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
  """Moves file ``src`` to ``dst``, replacing it (atomic locally and on ``ram://``)."""
  if scheme(src) is None:
    os.replace(_local(src), _local(dst))
  else:
    _gfile().rename(os.fspath(src), os.fspath(dst), overwrite=True)


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
  gfile, path = _gfile(), os.fspath(path)
  if kind in OBJECT_STORES:
    with gfile.GFile(path, 'wb') as f:
      f.write(data)
    return
  tmp = f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
  with gfile.GFile(tmp, 'wb') as f:
    f.write(data)
  gfile.rename(tmp, path, overwrite=True)


# --- Strict JSON --------------------------------------------------------------------------


def _non_finite_name(x: float) -> str:
  return 'NaN' if math.isnan(x) else ('Infinity' if x > 0 else '-Infinity')


def to_strict(obj: Any) -> Any:
  """``obj`` as plain JSON values: non-finite numbers become None, NumPy values Python
  ones, tuples lists, keys strings; other objects their ``str``."""
  if obj is None or isinstance(obj, (bool, str)):
    return obj
  if isinstance(obj, (int, np.integer)):
    return int(obj)
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  if isinstance(obj, np.bool_):
    return bool(obj)
  if isinstance(obj, np.ndarray):
    return to_strict(obj.tolist())
  if isinstance(obj, dict):
    return {str(k): to_strict(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_strict(v) for v in obj]
  return str(obj)


def non_finite(obj: Any, prefix: str = '') -> dict[str, str]:
  """The dotted paths of ``obj``'s non-finite numbers, each with ``'NaN'``,
  ``'Infinity'`` or ``'-Infinity'`` (what the null written in its place stood for)."""
  if isinstance(obj, (float, np.floating)):
    return {} if math.isfinite(obj) else {prefix or '.': _non_finite_name(float(obj))}
  if isinstance(obj, np.ndarray):
    return non_finite(obj.tolist(), prefix)
  if isinstance(obj, dict):
    items: Iterable[tuple[Any, Any]] = obj.items()
  elif isinstance(obj, (list, tuple)):
    items = enumerate(obj)
  else:
    return {}
  found: dict[str, str] = {}
  for key, value in items:
    found.update(non_finite(value, f'{prefix}.{key}' if prefix else str(key)))
  return found


def mark_non_finite(record: dict[str, Any], key: str = 'non_finite') -> dict[str, Any]:
  """``record`` plus ``record[key] = non_finite(record)`` when it holds a non-finite
  number (e.g. ``{'train_loss': 'NaN'}`` for a diverged run), else ``record`` itself."""
  found = non_finite(record)
  return {**record, key: found} if found else record


def dumps(obj: Any, **kwargs: Any) -> str:
  """Strict JSON text of ``obj`` (``to_strict``; keys sorted). ``kwargs`` go to json."""
  return json.dumps(to_strict(obj), allow_nan=False, sort_keys=True, **kwargs)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
  """Writes ``obj`` as strict, indented JSON, atomically."""
  write_atomic(path, dumps(obj, indent=2) + '\n')


def read_json(path: str | os.PathLike[str]) -> Any:
  return json.loads(read_bytes(path))


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
  """The complete records of a JSON-lines file (a torn last line is skipped); [] if
  there is no file."""
  try:
    text = read_bytes(path).decode()
  except FileNotFoundError:
    return []
  lines = text.split('\n')[:-1]  # the part after the last newline is torn or empty
  return [json.loads(line) for line in lines if line]


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
      self._file = _gfile().GFile(self.path, 'a')

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


def truncate_jsonl(path: str | os.PathLike[str], keep: Callable[[dict[str, Any]], bool]) -> None:
  """Rewrites a log atomically, keeping the records ``keep`` accepts (for a resume)."""
  records = [r for r in read_jsonl(path) if keep(r)]
  write_atomic(path, ''.join(dumps(r) + '\n' for r in records))


# --- Checking a workdir before any compute ------------------------------------------------


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


def check_workdir(path: str | os.PathLike[str], timeout_s: float = CHECK_TIMEOUT_S,
                  flag: str = '--workdir') -> str:
  """Proves ``path`` a usable directory (created if absent, written and read back) and
  returns it; otherwise a one-line ConfigError naming it.

  Refused: an empty path, a URL whose scheme TensorFlow's gfile has no filesystem for,
  a broken URL such as ``gs:/bucket`` (which would become a local folder ``gs:``), a
  file, an unwritable or unreachable place, and a filesystem that has not answered
  within ``timeout_s`` seconds (e.g. ``gs://`` where network or credentials are missing
  and the client retries); the probe's thread is then abandoned.
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
    supported = sorted(s for s in _gfile().get_registered_schemes() if s not in ('', 'file'))
    if kind not in supported:
      raise ConfigError(f'{flag} {path!r}: no filesystem for scheme {kind!r} (supported: '
                        f'{", ".join(s + "://" for s in supported)} and local paths)')
  try:
    _run_bounded(lambda: _probe(path), timeout_s)
  except concurrent.futures.TimeoutError:
    raise ConfigError(f'{flag} {path!r} did not answer within {timeout_s:g} s '
                      '(no network or credentials?)') from None
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f'{flag} {path!r} is not a usable directory: {_first_line(e)}') from None
  return path

