"""``python -m benchmarks.throughput``: the benchmark, or one cold start (internal)."""

from __future__ import annotations

import json
import sys
from typing import Sequence

from absl import app, flags

from benchmarks.throughput import cold_start, report, timing
from benchmarks.throughput.options import Options, define_flags
from lr_study.errors import ConfigError


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  options = Options.from_flags(flags.FLAGS, sys.argv[1:])
  try:
    if flags.FLAGS.first_update_of:
      print(json.dumps(cold_start.first_update(options, flags.FLAGS.first_update_of)))
      return
    results = timing.run(options)
  except ConfigError as e:
    sys.exit(f'error: {e}')
  print(report.write(results, options.out_dir), end='')


if __name__ == '__main__':
  define_flags()
  app.run(main)
