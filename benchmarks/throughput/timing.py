"""The rounds: every loop at every batch size, taking turns, then the noise measurement.

Each loop runs ``--rounds`` runs of ``--epochs`` epochs; the first epoch of every run is
not timed (compiles, warm-up), and a loop's figure is the median examples/s over the
others. In each round lr_study runs between the bound and the NumPy-fed loop, the
three as one unit whose direction alternates, the other loops taking turns to go first,
so that a change in the machine's load hits a ratio's two loops alike.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Sequence

import jax

from benchmarks.host import load_sample, summary
from benchmarks.throughput import cold_start, noise, peers, report
from benchmarks.throughput.loops import LrStudyLoop, dataset_config, run_setup
from benchmarks.throughput.options import COLD_START_LOOPS, Options
from lr_study.data.feeds import InMemoryFeed
from lr_study.data.sources import load_dataset_arrays
from lr_study.data.specs import dataset_spec
from lr_study.training.setup import RunSetup

BOUND, PEER = 'jax_jit_device_batch', 'jax_jit'  # lr_study runs between these two


def round_order(names: Sequence[str], r: int) -> list[str]:
  """The loops of round ``r`` in the order they run (module docstring)."""
  group = [n for n in (BOUND, 'lr_study', PEER) if n in names]
  if r % 2:
    group.reverse()
  units = [group] + [[n] for n in names if n not in group]
  first = r % len(units)
  return [n for unit in units[first:] + units[:first] for n in unit]


def epoch_median(run: dict[str, Any]) -> float:
  """The median of a run's timed epochs (all but its first)."""
  return statistics.median(run['epoch_seconds'][1:])


def loop_result(runs: list[dict[str, Any]], examples_per_epoch: int) -> dict[str, Any]:
  """A loop's figures over its runs, from the epochs after the first of each."""
  timed = [s for run in runs for s in run['epoch_seconds'][1:]]
  ttfu = [run['time_to_first_update_s'] for run in runs]
  result = {
      'examples_per_epoch': examples_per_epoch,
      'epoch_seconds': summary(timed),
      'examples_per_second': summary([examples_per_epoch / s for s in timed]),
      'examples_per_second_per_run': [examples_per_epoch / epoch_median(run)
                                      for run in runs],
      'time_to_first_update_s': {'first_run': ttfu[0],
                                 'warm': statistics.median(ttfu[1:]) if ttfu[1:] else None},
      'first_dispatch_updates': runs[0]['first_dispatch_updates'],
      'final_test_accuracy': [run['final_test_accuracy'] for run in runs],
      'untimed_first_epoch_seconds': [run['epoch_seconds'][0] for run in runs],
  }
  if 'xla_compiles' in runs[0]:
    result['xla_compiles_per_run'] = [run['xla_compiles'] for run in runs]
    result['xla_compiles_before_first_update'] = [run['xla_compiles_before_first_update']
                                                  for run in runs]
  if 'train_step_compiles_so_far' in runs[0]:
    result['compiles'] = runs[-1]['train_step_compiles_so_far']
  return result


def runners(options: Options, b: int, setups: dict[Any, RunSetup], feed: InMemoryFeed,
            data: peers.HostData, torch: Any, workdir: str
            ) -> dict[str, Callable[[int], dict[str, Any]]]:
  """``run(seed)`` of every loop at batch size ``b``."""
  out = {}
  for name in ('lr_study', 'lr_study_k1'):
    loop = LrStudyLoop(setups[b, name], os.path.join(workdir, f'b{b}', name))
    out[name] = functools.partial(loop.run, feed)
  num_classes = setups[b, 'lr_study'].spec.num_classes
  for name in peers.JIT_LOOPS:
    if name == 'jax_jit_tfdata' and importlib.util.find_spec('tensorflow') is None:
      continue  # TensorFlow is optional: without it, no tf.data loop
    out[name] = functools.partial(peers.jax_jit_run, data, num_classes, b, options.epochs,
                                  options.learning_rate, loop=name)
  for name in peers.TORCH_LOOPS if torch is not None else ():
    out[name] = functools.partial(peers.torch_run, torch, data, num_classes, b,
                                  options.epochs, options.learning_rate, loop=name)
  return out


def time_batch_size(options: Options, b: int, loops: dict[str, Callable[[int], Any]],
                    clock: noise.NoiseClock, examples_per_epoch: int
                    ) -> tuple[dict[str, Any], list[dict[str, float]], list[float]]:
  """Every loop at batch size ``b``, ``options.rounds`` runs each, and the noise
  measurement after each round: the loops' results, each round's measurement seconds and
  its median lr_study epoch."""
  runs: dict[str, list[dict[str, Any]]] = {name: [] for name in loops}
  measured = []
  for r in range(options.rounds):
    for name in round_order(list(loops), r):
      runs[name].append(loops[name](r))
      print(f'B={b} round {r} {name}: epochs '
            + ', '.join(f'{s:.3f}' for s in runs[name][-1]['epoch_seconds']) + ' s',
            flush=True)
    measured.append(clock.time_once(r + 1))
    print(f'B={b} round {r} noise measurement: '
          + ', '.join(f'{k} {s:.3f}' for k, s in measured[-1].items()) + ' s', flush=True)
  return ({name: loop_result(name_runs, examples_per_epoch) for name, name_runs in runs.items()},
          measured, [epoch_median(run) for run in runs['lr_study']])


def run(options: Options) -> dict[str, Any]:
  """Every loop at every batch size, and the noise measurement; the results record."""
  spec = dataset_spec(dataset_config(options))
  options.check(spec.num_train_examples, jax.local_device_count())
  setups = {}
  for b in options.batch_sizes:  # every config is checked before any data is read
    setups[b, 'lr_study'] = run_setup(options, b)
    setups[b, 'lr_study_k1'] = run_setup(options, b, updates_per_dispatch=1)
  loads = [load_sample('start')]
  cold = {}
  if options.cold_start:
    for b in options.batch_sizes:
      for loop in COLD_START_LOOPS:
        cold.setdefault(loop, {})[str(b)] = cold_start.cold_start(options, loop, b)
        print(f'B={b} cold start {loop}: {cold[loop][str(b)]}', flush=True)
  started = time.perf_counter()
  first = setups[options.batch_sizes[0], 'lr_study']
  arrays = load_dataset_arrays(first.config.dataset)
  feed = InMemoryFeed(arrays, spec, first.config.dataset.eval_batch_size)
  data = peers.host_data(arrays)
  load_seconds = time.perf_counter() - started
  clock = noise.NoiseClock(first, feed, options.noise())
  torch = peers.torch_module() if options.torch else None
  loops, seconds, epochs = {}, {}, {}
  with tempfile.TemporaryDirectory(prefix='lr_study_throughput_') as workdir:
    for b in options.batch_sizes:
      loads.append(load_sample(f'B={b} start'))
      per_b, seconds[str(b)], epochs[str(b)] = time_batch_size(
          options, b, runners(options, b, setups, feed, data, torch, workdir), clock,
          (spec.num_train_examples // b) * b)
      for name, result in per_b.items():
        loops.setdefault(name, {})[str(b)] = result
      loads.append(load_sample(f'B={b} end'))
  costs = noise.cost(clock, seconds, epochs)
  return report.record(options, first, loops, costs, cold, loads, load_seconds, torch)
