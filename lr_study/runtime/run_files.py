"""The files of a run directory, written so that a killed run leaves nothing half-written.

Whole files (metadata, plan, summary, checkpoints) are written to a temporary name and
renamed into place (``os.replace`` is atomic on POSIX). Logs are JSON lines, one
``write`` each; a reader skips a torn last line, and a resumed run first rewrites each
log to end at its checkpoint.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable

METRICS = 'metrics.jsonl'  # one line per evaluation
TRAIN_LOG = 'train_log.jsonl'  # one line per `train_log_every_updates` updates
EVENTS = 'schedule_events.jsonl'  # every LR or batch-size change made at run time
METADATA = 'metadata.json'
PLAN = 'plan.json'
SUMMARY = 'summary.json'
CHECKPOINT = 'checkpoint.msgpack'


def write_atomic(path: str, data: bytes | str) -> None:
  """Writes ``data`` to ``path`` through a temporary file and an atomic rename."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(data.encode() if isinstance(data, str) else data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json(path: str, obj: Any) -> None:
  write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + '\n')


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """The complete records of a JSON-lines file (a torn last line is skipped)."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      if line.endswith('\n'):
        records.append(json.loads(line))
  return records


class JsonlWriter:
  """Appends one JSON record per line, each with a single write, flushed at once."""

  def __init__(self, path: str):
    self.path = path
    self._file = open(path, 'a')

  def write(self, record: dict[str, Any]) -> None:
    self._file.write(json.dumps(record, sort_keys=True) + '\n')
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def truncate_jsonl(path: str, keep: Callable[[dict[str, Any]], bool]) -> None:
  """Rewrites a log atomically, keeping the records ``keep`` accepts (for a resume)."""
  records: Iterable[dict[str, Any]] = [r for r in read_jsonl(path) if keep(r)]
  write_atomic(path, ''.join(json.dumps(r, sort_keys=True) + '\n' for r in records))
