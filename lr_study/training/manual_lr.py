"""Manual learning-rate decay: change the LR of a running or stopped run by hand.

Ng's C2W2L09 lists "manual decay" among the ways to decay the LR: watch the run, and
lower the LR when progress stalls. Here that is a request file in the run directory::

    python -m lr_study.training.manual_lr --run_dir=runs/.../decay/seed_0 --lr=0.01

A running loop polls for the file at each epoch start and whenever it draws its progress
line (on several processes, at epoch starts only: process 0 reads the file and tells the
others); a stopped run reads it when it resumes. The new LR takes effect at the next update, the request file
is removed, and the change is logged with that update in ``schedule_events.jsonl``
(the metrics log's ``learning_rate`` shows it from the next evaluation on).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from lr_study.runtime import run_files
from lr_study.errors import ConfigError

REQUEST = 'set_lr.json'


def request(run_dir: str, learning_rate: float) -> str:
  """Writes the request file atomically and returns its path."""
  if not os.path.isdir(run_dir):
    raise ConfigError(f'--run_dir {run_dir!r} is not a directory')
  if not learning_rate >= 0:
    raise ConfigError(f'--lr must be >= 0, got {learning_rate}')
  path = os.path.join(run_dir, REQUEST)
  run_files.write_json(path, {'learning_rate': learning_rate})
  return path


def take_request(run_dir: str) -> float | None:
  """The requested LR, removing the request; None when there is none."""
  path = os.path.join(run_dir, REQUEST)
  try:
    with open(path) as f:
      value = float(json.load(f)['learning_rate'])
  except FileNotFoundError:
    return None
  os.remove(path)
  return value


def main(argv: list[str]) -> None:
  del argv
  path = request(flags.FLAGS.run_dir, flags.FLAGS.lr)
  print(f'requested learning rate {flags.FLAGS.lr} in {path}')


if __name__ == '__main__':
  flags.DEFINE_string('run_dir', None, 'The run directory (workdir/<variant>/seed_<k>).',
                      required=True)
  flags.DEFINE_float('lr', None, 'The new learning rate.', required=True)
  app.run(main)
