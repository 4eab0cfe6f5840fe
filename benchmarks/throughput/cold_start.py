"""Cold starts: a fresh ``python`` per loop and batch size, timed to its first update."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.throughput import peers
from benchmarks.throughput.loops import XLA_COMPILES, LrStudyLoop, run_setup
from benchmarks.throughput.options import Options
from lr_study.data.feeds import InMemoryFeed
from lr_study.data.sources import load_dataset_arrays

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def first_update(options: Options, loop: str) -> dict[str, Any]:
  """In this (fresh) process: load the data, run ``loop`` for one epoch, and return when
  each stage ended, as ``time.time()`` for the launching process to compare."""
  imported = time.time()
  batch_size = options.batch_sizes[0]
  setup = run_setup(options, batch_size, epochs=1)
  arrays = load_dataset_arrays(setup.config.dataset)
  if loop == 'lr_study':
    feed = InMemoryFeed(arrays, setup.spec, setup.config.dataset.eval_batch_size)
  else:
    data = peers.host_data(arrays)
  loaded = time.time()
  compiled = len(XLA_COMPILES)
  if loop == 'lr_study':
    with tempfile.TemporaryDirectory(prefix='lr_study_throughput_') as workdir:
      result = LrStudyLoop(setup, workdir).run(feed, 0)
  else:
    result = peers.jax_jit_run(data, setup.spec.num_classes, batch_size, 1,
                               options.learning_rate, 0)
  wall = time.time() - time.perf_counter()  # the offset from the perf clock to time.time()
  before = XLA_COMPILES[compiled:compiled + result['xla_compiles_before_first_update']]
  slowest = sorted(before, key=lambda c: -c[1])[:5]
  return {'imported': imported, 'data_loaded': loaded,
          'loop_started': result['start'] + wall,
          'first_update': result['start'] + result['time_to_first_update_s'] + wall,
          'first_dispatch_updates': result['first_dispatch_updates'],
          'xla_compiles_before_first_update': len(before),
          'xla_compile_seconds_before_first_update': sum(c[1] for c in before),
          'slowest_compiles': [[name, round(seconds, 3)] for name, seconds in slowest]}


def cold_start(options: Options, loop: str, batch_size: int) -> dict[str, Any]:
  """Runs :func:`first_update` in a new ``python`` and times it from the launch."""
  launched = time.time()
  out = subprocess.run([sys.executable, '-m', 'benchmarks.throughput',
                        *options.child_argv(loop, batch_size)],
                       capture_output=True, text=True, check=True, cwd=ROOT)
  child = json.loads(out.stdout.strip().splitlines()[-1])
  return {'launch_to_first_update_s': child['first_update'] - launched,
          'imports_s': child['imported'] - launched,
          'data_load_s': child['data_loaded'] - child['imported'],
          'loop_start_to_first_update_s': child['first_update'] - child['loop_started'],
          **{key: child[key] for key in ('first_dispatch_updates',
                                         'xla_compiles_before_first_update',
                                         'xla_compile_seconds_before_first_update',
                                         'slowest_compiles')}}
