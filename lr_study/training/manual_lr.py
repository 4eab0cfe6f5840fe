"""Manual learning-rate decay: change the LR of a running or stopped run by hand.

Ng's C2W2L09 lists "manual decay" among the ways to decay the LR: watch the run, and
lower the LR when progress stalls. Here that is a request file in the run directory::

    python -m lr_study.training.manual_lr --run_dir=runs/.../decay/seed_0 --lr=0.01

The tool checks the request (an LR that is a finite number > 0, a run directory: one
that holds ``plan.json``, of a run that has not ended: no ``summary.json`` of a divergence
or of its newest checkpoint) and writes ``set_lr.json`` atomically:
``{"id": "<uuid>", "learning_rate": 0.01, "requested_at": "<UTC time>"}``. A bad request
is one line on stderr and exit status 2.

The run side, exactly once across kills:

1. ``read_request(run_dir)`` returns the request (``id``, ``learning_rate``) and leaves
   the file in place. A malformed file (not JSON, other fields, an LR that is not a
   finite number > 0) is renamed ``set_lr.json.rejected`` with one warning line, and
   the run goes on.
2. The loop applies a request whose ``id`` differs from the last one it applied, and
   keeps that id in its checkpointed state. Before it applies it, ``mark_taken`` writes
   the update it applies it from into the file (``taken_at_update``), so a run resumed
   from an older checkpoint applies it again at exactly that update.
3. ``acknowledge(run_dir, id)`` deletes the file once a checkpoint holding the change
   is saved (not a newer request written meanwhile). Killed before that checkpoint, the
   run resumes from an older one without the change and applies the request again;
   killed after it, the resumed state already holds the id, so the request is not
   applied twice, only acknowledged.

A new request does not replace one that a run has taken and not yet checkpointed: the
file holds one request, so a run killed before that checkpoint would resume without the
first change (logged, then lost) and apply the second alone. The tool refuses it in one
line until the run's next checkpoint has deleted the file; an untaken request is
replaced (the newest wins).

A hand-written file may leave out ``id``: the request is then known by a hash of its
content and modification time, so the same file is recognised across polls and
restarts while a rewritten one is new (on ``ram://``, which keeps no modification times,
by its content alone).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import sys
import uuid

from absl import flags
from absl import logging

from lr_study.errors import ConfigError
from lr_study.runtime import run_files

REQUEST = 'set_lr.json'
REJECTED = REQUEST + '.rejected'
_FIELDS = frozenset({'id', 'learning_rate', 'requested_at', 'taken_at_update'})


@dataclasses.dataclass(frozen=True)
class Request:
  """A manual LR request: its identity, the LR asked for, and the update from which a
  run applied it (None until one takes it)."""

  id: str
  learning_rate: float
  taken_at_update: int | None = None


def _check_learning_rate(learning_rate: object, name: str) -> float:
  if (isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float))
      or not math.isfinite(learning_rate) or learning_rate <= 0):
    raise ConfigError(f'{name} must be a finite number > 0, got {learning_rate!r}')
  return float(learning_rate)


def request(run_dir: str, learning_rate: float) -> Request:
  """Checks a request and writes it to ``run_dir`` atomically; ConfigError if bad."""
  learning_rate = _check_learning_rate(learning_rate, '--lr')
  if not run_files.isdir(run_dir):
    raise ConfigError(f'--run_dir {run_dir} is not a directory')
  if not run_files.exists(os.path.join(run_dir, run_files.PLAN)):
    raise ConfigError(f'--run_dir {run_dir} is not a run directory (it has no '
                      f'{run_files.PLAN})')
  if _ended(run_dir):
    raise ConfigError(f'--run_dir {run_dir}: the run has ended (its {run_files.SUMMARY} and '
                      'last checkpoint agree, or it diverged), so no request can apply to it')
  taken = _taken_request(run_dir)
  if taken is not None:
    raise ConfigError(
        f'--run_dir {run_dir}: the run took request {taken.id} (learning rate '
        f'{taken.learning_rate:g}) at update {taken.taken_at_update} and has not '
        'checkpointed it yet; a new request now would lose that change if the run stopped '
        f'before its next checkpoint: ask again once its checkpoint has deleted {REQUEST}')
  new = Request(id=uuid.uuid4().hex, learning_rate=learning_rate)
  now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  run_files.write_json(os.path.join(run_dir, REQUEST), {
      'id': new.id, 'learning_rate': new.learning_rate, 'requested_at': now})
  return new


def _ended(run_dir: str) -> bool:
  """Whether the run will train no more: it diverged, or finished at its newest checkpoint
  (a run whose later checkpoints are gone trains on from the newest one left)."""
  path = os.path.join(run_dir, run_files.SUMMARY)
  summary = run_files.read_json(path) if run_files.exists(path) else None
  return summary is not None and (summary.get('status') == 'diverged' or summary.get('updates')
                                  in run_files.checkpoint_steps(run_dir)[-1:])


def _parse(data: bytes, mtime: str) -> Request:
  """The request in ``data``; ValueError saying what is wrong with it."""
  try:
    fields = json.loads(data)  # NaN and Infinity parse, then fail the LR check
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f'not JSON: {str(e).splitlines()[0]}') from None
  if not isinstance(fields, dict):
    raise ValueError(f'not a JSON object but {type(fields).__name__}')
  if 'learning_rate' not in fields:
    raise ValueError('no learning_rate')
  unknown = sorted(set(fields) - _FIELDS)
  if unknown:
    raise ValueError(f'unknown field(s) {", ".join(unknown)}')
  try:
    learning_rate = _check_learning_rate(fields['learning_rate'], 'learning_rate')
  except ConfigError as e:
    raise ValueError(str(e)) from None
  request_id = fields.get('id')
  if request_id is None:
    request_id = 'sha256:' + hashlib.sha256(data + mtime.encode()).hexdigest()[:32]
  elif not isinstance(request_id, str) or not request_id:
    raise ValueError(f'id must be a non-empty string, got {request_id!r}')
  taken = fields.get('taken_at_update')
  if taken is not None and (isinstance(taken, bool) or not isinstance(taken, int) or taken < 0):
    raise ValueError(f'taken_at_update must be a whole number >= 0, got {taken!r}')
  return Request(id=request_id, learning_rate=learning_rate, taken_at_update=taken)


def _taken_request(run_dir: str) -> Request | None:
  """The request of ``run_dir`` if a run has taken it (and not yet acknowledged it);
  None if there is none, it is untaken or malformed (the tool may replace those)."""
  path = os.path.join(run_dir, REQUEST)
  try:
    pending = _parse(run_files.read_bytes(path), str(run_files.modified_ns(path)))
  except (FileNotFoundError, ValueError):
    return None
  return pending if pending.taken_at_update is not None else None


def mark_taken(run_dir: str, pending: Request, update: int) -> Request:
  """Records in the request file that ``pending`` applies from ``update``, atomically."""
  taken = dataclasses.replace(pending, taken_at_update=update)
  run_files.write_json(os.path.join(run_dir, REQUEST), dataclasses.asdict(taken))
  return taken


def read_request(run_dir: str) -> Request | None:
  """The pending request of ``run_dir``, left in place; None if there is none. A
  malformed request is renamed ``set_lr.json.rejected`` with one warning line."""
  path = os.path.join(run_dir, REQUEST)
  try:
    data = run_files.read_bytes(path)
    mtime = str(run_files.modified_ns(path))
  except FileNotFoundError:
    return None
  try:
    return _parse(data, mtime)
  except ValueError as e:
    rejected = os.path.join(run_dir, REJECTED)
    try:
      run_files.rename(path, rejected)
    except FileNotFoundError:  # acknowledged or replaced meanwhile
      return None
    logging.warning('manual LR request %s rejected (%s); moved to %s', path, e, rejected)
    return None


def acknowledge(run_dir: str, request_id: str) -> bool:
  """Deletes the request file if it still holds request ``request_id`` (call once a
  checkpoint holding the change is saved); whether it did."""
  pending = read_request(run_dir)
  if pending is None or pending.id != request_id:
    return False
  return run_files.remove(os.path.join(run_dir, REQUEST))


def main(argv: list[str]) -> int:
  """The command line tool; returns its exit status (2 for a bad request)."""
  program = 'python -m lr_study.training.manual_lr'
  flag_values = flags.FlagValues()
  flags.DEFINE_string('run_dir', None, 'The run directory (workdir/<variant>/seed_<k>).',
                      flag_values=flag_values)
  flags.DEFINE_float('lr', None, 'The new learning rate, a finite number > 0.',
                     flag_values=flag_values)
  if {'-h', '-?', '--help', '--helpshort', '--helpfull'} & set(argv[1:]):
    print(f'{__doc__.splitlines()[0]}\n\n  {program} --run_dir=DIR --lr=LR\n')
    print('\n'.join(f'  --{name}: {flag_values[name].help}' for name in ('run_dir', 'lr')))
    return 0
  try:
    rest = flag_values(argv)
    if len(rest) > 1:
      raise ConfigError(f'unexpected argument(s): {" ".join(rest[1:])}')
    for name in ('run_dir', 'lr'):
      if flag_values[name].value is None:
        raise ConfigError(f'--{name} is required')
    new = request(flag_values.run_dir, flag_values.lr)
  except (flags.Error, ConfigError, OSError) as e:
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f'{program}: error: {message}', file=sys.stderr)
    return 2
  print(f'requested learning rate {new.learning_rate} in '
        f'{os.path.join(flag_values.run_dir, REQUEST)} (request {new.id})')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
