"""The command line: flags, their checks, the run."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import jax
import ml_collections

import benchmarks.input_pipeline
from benchmarks.input_pipeline import report, timing
from lr_study import config as schema
from lr_study.data.feeds import InMemoryFeed
from lr_study.data.sources import load_dataset_arrays
from lr_study.data.specs import dataset_spec
from lr_study.errors import ConfigError


def dataset_config(data_dir: str, manual_dir: str) -> ml_collections.ConfigDict:
  """MNIST's full 60k training split, in-memory, prepared offline from ``manual_dir``."""
  return schema.dataset_defaults('mnist', data_dir=data_dir, manual_dir=manual_dir)


def check_args(args: argparse.Namespace, num_train_examples: int, num_devices: int) -> int:
  """The per-device batch; ConfigError on a value the benchmark cannot run with."""
  for name in ('steps', 'repeats', 'warmup', 'batch_size', 'updates_per_dispatch'):
    if getattr(args, name) < 1:
      raise ConfigError(f'--{name} must be >= 1, got {getattr(args, name)}')
  if args.batch_size % num_devices:
    raise ConfigError(f'--batch_size {args.batch_size} is not divisible by {num_devices} devices')
  updates_per_epoch = num_train_examples // args.batch_size
  if args.warmup + args.steps > updates_per_epoch:
    raise ConfigError(f'--warmup + --steps must be <= {updates_per_epoch} (one epoch at batch '
                      f'{args.batch_size}), got {args.warmup + args.steps}')
  return args.batch_size // num_devices


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Runs the timings of ``args`` and returns the results record."""
  dataset_cfg = dataset_config(args.data_dir, args.manual_dir)
  spec = dataset_spec(dataset_cfg)
  per_device = check_args(args, spec.num_train_examples, jax.local_device_count())
  arrays = (timing.synthetic_arrays(spec) if args.synthetic
            else load_dataset_arrays(dataset_cfg))
  feed = InMemoryFeed(arrays, spec, dataset_cfg.eval_batch_size)  # what load_feed builds
  timings, gathers = timing.time_in_memory(args, arrays, feed, per_device)
  rates = None if args.synthetic else timing.time_streaming(
      dataset_cfg, args.batch_size, args.warmup, args.steps, args.repeats)
  return report.record(args, 'synthetic' if args.synthetic else spec.name,
                       feed.num_local_train, per_device, timings, gathers, rates)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.input_pipeline',
      description=benchmarks.input_pipeline.__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.path.join('/tmp', 'lr_study_tfds'),
                      help='TFDS data_dir where MNIST is (or gets) prepared.')
  parser.add_argument('--manual_dir', default=os.path.join('..', 'shared', 'data', 'mnist'),
                      help='The four official MNIST files, for offline preparation.')
  parser.add_argument('--steps', type=int, default=400, help='Timed updates per repetition.')
  parser.add_argument('--repeats', type=int, default=7, help='Timed repetitions.')
  parser.add_argument('--warmup', type=int, default=20, help='Untimed updates after compiling.')
  parser.add_argument('--batch_size', type=int, default=128, help='Global batch size.')
  parser.add_argument('--updates_per_dispatch', type=int, default=32,
                      help='Updates per call of the fused timings (a_K) and (b_K).')
  parser.add_argument('--out_dir', default=os.path.join('benchmarks', 'results'),
                      help='Where input_pipeline.json and input_pipeline.md go.')
  parser.add_argument('--synthetic', action='store_true',
                      help='Random uint8 data of MNIST shapes; no preparation, no streaming.')
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parser.parse_args(argv)
  args.argv = argv
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Parses ``argv``, runs, writes and prints the results; returns them."""
  args = parse_args(argv)
  results = run(args)
  print(report.write(results, args.out_dir), end='')
  return results
