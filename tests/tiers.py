"""The pytest runs of ``make test`` and the count they print together.

Tests run on one CPU device, as ``launch.py`` does for a user, except those marked
``multidevice``: they need :data:`MULTIDEVICE` devices (a ``pmap`` across them, a layout of
8), and XLA fixes the number of fake CPU devices once per process, from ``XLA_FLAGS``. So
``make test`` runs pytest twice, at the same time: ``-m 'not multidevice'`` with
``XLA_FLAGS`` unset, and ``-m multidevice`` with :data:`MULTIDEVICE_FLAGS`. Any other run
skips a ``multidevice`` test unless its ``XLA_FLAGS`` give 8 devices, saying how to run it.

Where ``LR_STUDY_TEST_COUNTS`` names a file, each pytest run adds its tests and outcomes
to it (``conftest.pytest_sessionfinish``); ``python tests/tiers.py FILE`` prints the total.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys

MULTIDEVICE = 8
MULTIDEVICE_FLAGS = f'--xla_force_host_platform_device_count={MULTIDEVICE}'
COUNTS_ENV = 'LR_STUDY_TEST_COUNTS'
OUTCOMES = ('passed', 'failed', 'skipped', 'xfailed', 'xpassed', 'error')


def forced_device_count(xla_flags: str) -> int:
  """The number of CPU devices ``xla_flags`` forces (its last setting wins); 1 if none."""
  counts = re.findall(r'--xla_force_host_platform_device_count=(\d+)', xla_flags)
  return int(counts[-1]) if counts else 1


def read_counts(path: str) -> dict[str, int]:
  if not os.path.exists(path) or not os.path.getsize(path):
    return {}
  with open(path) as f:
    return json.load(f)


def add_counts(path: str, tests: int, stats: dict[str, list]) -> None:
  """Adds one pytest run to ``path``: its ``tests`` selected and the outcomes in its
  terminal reporter's ``stats``. The runs may end at once: each adds under a lock."""
  with open(path, 'a+') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    counts = read_counts(path)
    counts['runs'] = counts.get('runs', 0) + 1
    counts['tests'] = counts.get('tests', 0) + tests
    for outcome in OUTCOMES:
      counts[outcome] = counts.get(outcome, 0) + len(stats.get(outcome, ()))
    f.seek(0)
    f.truncate()
    json.dump(counts, f)


def total_line(counts: dict[str, int]) -> str:
  """'1130 tests in 2 pytest runs: 1127 passed, 3 skipped'."""
  runs = counts.get('runs', 0)
  outcomes = ', '.join(f'{counts[o]} {o}' for o in OUTCOMES if counts.get(o))
  return (f'{counts.get("tests", 0)} tests in {runs} pytest run{"s" * (runs != 1)}: '
          f'{outcomes or "none ran"}')


if __name__ == '__main__':
  print(total_line(read_counts(sys.argv[1])))
