r"""Times the device-resident input pipeline alone against the whole train step.

    python -m benchmarks.input_pipeline [--steps 400] [--batch_size 128] \
        [--manual_dir ../shared/data/mnist] [--data_dir /tmp/lr_study_tfds] \
        [--out_dir benchmarks/results] [--synthetic]

(``make bench`` runs it with the defaults, after ``benchmarks.throughput``.) The target:
on the MNIST MLP at batch 128, the data side of a train step costs under 5% of the step.
The benchmark uses the real MNIST training split, prepared offline by TFDS from the four
official files in ``--manual_dir`` (about 20 s the first time), and the calls the
training loop makes (``feeds.InMemoryFeed``, ``InMemoryFeed.epoch`` for the epoch's data,
``StepCompiler.train_step``), on the MLP 784-256-256-10 with momentum SGD (m = 0.9), at
global batch ``B`` over the ``D`` local devices, ``P = B / D`` examples per device:

(a) data side: what the train step runs for its batch, alone in a ``jax.pmap`` over
    ``lr_study.runtime.devices.AXIS``: ``clock.epoch_and_position`` of the update
    counter, then ``in_memory.take_micro_batches`` (gather and normalize) from the
    epoch's data (``InMemoryFeed.epoch``: the split with the epoch's permutation). It
    returns the whole batch, so nothing is elided: labels int32 [D, P] and images
    float32 [D, P, 784], the flat rows the MLP reads (its first op is
    ``x.reshape((B, -1))``; ``step_image_gathers`` records the uint8 gathers of the
    compiled step, e.g. ``u8[P,1,784]`` on XLA:CPU, so the step gathers and normalizes
    flat rows too). (a′) returns the images as [D, P, 28, 28, 1] instead: on XLA:CPU,
    writing a layout whose innermost dimension is the single channel is an unvectorized
    copy, which the MLP's step never makes;
(b) train step: ``StepCompiler(...).train_step(P, 1)`` called for one update per call
    (``num_updates = 1``), i.e. the same gather, forward, backward, ``pmean``, the
    gradient noise measurement where it is due (the first 32 updates, then every 32nd)
    and the optimizer update;
(c) data fraction ``a / b`` in percent, target < 5%. A step also pays for dispatching one
    pmapped call, and (a) pays it again; ``dispatch floor`` times a pmap of the same
    inputs that only advances the update counter, and ``(a − floor) / b`` is the data
    side's share once that double count is removed. Inside the step XLA fuses the
    gather into its consumers, which (a) cannot show; so (b′) times the streaming-mode
    step, ``train_step(P, 1, streaming=True)``, on one fixed uint8 batch already on the
    devices (normalize, no gather), and ``(b − b′) / b`` is what the gather adds;
(e) the fused dispatch the training loop makes: (b_K) the same train step running
    ``K = --updates_per_dispatch`` updates per call (at most
    ``lr_study.training.loop.max_in_flight()``, as the loop chunks them), and (a_K) the
    data side in a
    ``lax.fori_loop`` of ``K`` gathers per call (each overwriting the returned batch),
    both per update; ``a_K / b_K`` is the data side's share without per-call dispatch;
(d) for contrast, streaming mode, ``streaming.epoch_batches``: tf.data on the host and a
    host-to-device copy every step (prefetched, as in training), in batches per second.

Each timing compiles and warms up first (``--warmup`` updates, not timed), then runs
``--repeats`` repetitions of ``--steps`` updates dispatched back to back, as the training
loop dispatches them, blocking (``jax.block_until_ready``) where the loop does
(``lr_study.training.loop.max_in_flight``: after every dispatch on several CPU devices)
and at the end; a repetition's time per update is its elapsed time over ``--steps``, and
the median over repetitions is the headline (the mean is reported beside it). Within a
repetition the timings take turns, so a change in the machine's load shifts them alike.
Repetition ``r`` is epoch ``r + 1`` from its first update (its own permutation, and a
phase table that starts there), so every update reads distinct, in-range examples.
``--synthetic`` swaps the data for random uint8 images of MNIST's shapes and skips (d):
no data preparation.

Writes ``input_pipeline.json`` and ``input_pipeline.md`` to ``--out_dir``. Set
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` to split the step over 8 CPU
devices (with ``--out_dir`` elsewhere, not to overwrite the one-device results).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np

from lr_study import config as schema
from lr_study.data.feeds import InMemoryFeed
from lr_study.data.in_memory import DeviceData, take_micro_batches
from lr_study.data.sources import DatasetArrays, SplitArrays, load_dataset_arrays
from lr_study.data.specs import DatasetSpec, dataset_spec
from lr_study.data.streaming import epoch_batches
from lr_study.errors import ConfigError
from lr_study.models import build_model
from lr_study.runtime import devices
from lr_study.runtime.metadata import git_commit, package_versions
from lr_study.runtime.run_files import write_json
from lr_study.schedules import build_lr_schedule, clock
from lr_study.training.loop import max_in_flight
from lr_study.optimizers import build_optimizer
from lr_study.training.step import StepCompiler, StepInputs, init_train_state

MODEL = {'name': 'mlp', 'widths': (256, 256)}
OPTIMIZER = {'name': 'momentum', 'momentum': 0.9}
LR_SCHEDULE = {'name': 'constant', 'init_value': 0.1}
SEED = 0
TARGET_PERCENT = 5.0
JSON_NAME, MARKDOWN_NAME = 'input_pipeline.json', 'input_pipeline.md'

Context = tuple[DeviceData, StepInputs]  # an epoch's data (split + permutation), step inputs
Stepper = Callable[[Any, Context, int], Any]  # (carry, context, updates) -> next carry


def dataset_config(data_dir: str, manual_dir: str) -> ml_collections.ConfigDict:
  """MNIST's full 60k training split, in-memory, prepared offline from ``manual_dir``."""
  return schema.dataset_defaults('mnist', data_dir=data_dir, manual_dir=manual_dir)


def synthetic_arrays(spec: DatasetSpec) -> DatasetArrays:
  """Random uint8 images and labels with the sizes and shapes of ``spec``."""
  rng = np.random.default_rng(SEED)

  def split(n: int) -> SplitArrays:
    return SplitArrays(rng.integers(0, 256, (n, *spec.image_shape), dtype=np.uint8),
                       rng.integers(0, spec.num_classes, n).astype(np.int32))

  return DatasetArrays(spec, split(spec.num_train_examples), split(spec.num_test_examples))


def epoch_context(feed: InMemoryFeed, epoch: int, first_update: int, updates_per_epoch: int,
                  batch_size: int) -> Context:
  """Epoch ``epoch``'s data from ``InMemoryFeed.epoch`` and step inputs whose one-phase
  table starts that epoch at update ``first_update``."""
  (split,), _ = next(iter(feed.epoch(SEED, epoch, batch_size, updates_per_epoch)))
  column = lambda value, dtype=np.int32: np.array([value], dtype)
  table = clock.PhaseTable(first_update=column(first_update), start_epoch=column(epoch),
                           updates_per_epoch=column(updates_per_epoch),
                           batch_size=column(batch_size), lr_multiplier=column(1.0, np.float32),
                           start_offset=column(0),
                           epoch_examples=column(updates_per_epoch * batch_size))
  return split, devices.replicate(StepInputs(seed=np.int32(SEED), table=table,
                                             lr_multiplier=np.float32(1.0)))


def _batch(update: jax.Array, split: DeviceData, inputs: StepInputs, per_device_batch: int,
           flat: bool) -> tuple[jax.Array, jax.Array]:
  """The batch the train step reads at ``update`` (``StepCompiler._train_step``'s own
  calls): images as flat rows [P, H·W·C] when ``flat``, else [P, H, W, C]."""
  epoch, position = clock.epoch_and_position(inputs.table, update)
  x, y = take_micro_batches(split, position, per_device_batch, 1, jax.local_device_count(),
                            augment=False, seed=inputs.seed, epoch=epoch)
  x, y = x[0], y[0]
  return (x.reshape(per_device_batch, -1) if flat else x), y


def _gather_normalize(update: jax.Array, split: DeviceData, inputs: StepInputs, *,
                      per_device_batch: int, flat: bool
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(a): one update's data side; returns the next counter and the whole batch."""
  return (update + 1, *_batch(update, split, inputs, per_device_batch, flat))


def _gather_normalize_fused(carry: tuple[jax.Array, jax.Array, jax.Array], split: DeviceData,
                            inputs: StepInputs, num_updates: jax.Array, *,
                            per_device_batch: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(a_K): ``num_updates`` updates' data sides in one call, each batch overwriting the
  last in the returned carry."""

  def one(_, carry):
    update = carry[0]
    return (update + 1, *_batch(update, split, inputs, per_device_batch, flat=True))

  return jax.lax.fori_loop(0, num_updates, one, carry)


def _advance(update: jax.Array, split: DeviceData, inputs: StepInputs) -> jax.Array:
  """The dispatch floor: the same pmapped inputs, only the update counter advanced."""
  del split, inputs
  return update + 1


def _run_steps(stepper: Stepper, carry: Any, ctx: Context, updates: int, per_call: int) -> Any:
  """``updates`` updates in calls of at most ``per_call``, dispatched back to back and
  blocked as the training loop blocks."""
  sync = max_in_flight()
  while updates > 0:
    k = min(per_call, updates)
    carry = stepper(carry, ctx, k)
    updates -= k
    if sync:
      jax.block_until_ready(carry)
  return jax.block_until_ready(carry)


def time_interleaved(steppers: dict[str, tuple[Stepper, Any, int]], warmup_ctx: Context,
                     contexts: Sequence[Context], warmup: int, steps: int
                     ) -> dict[str, list[float]]:
  """µs per update of each stepper (with its initial carry and updates per call) in each
  repetition.

  A repetition runs ``steps`` updates of each stepper in turn, in one context; taking
  turns, the steppers see the same changes in machine load.
  """
  carries = {name: _run_steps(stepper, carry, warmup_ctx, warmup, per_call)
             for name, (stepper, carry, per_call) in steppers.items()}
  times: dict[str, list[float]] = {name: [] for name in steppers}
  for ctx in contexts:
    for name, (stepper, _, per_call) in steppers.items():
      start = time.perf_counter()
      carries[name] = _run_steps(stepper, carries[name], ctx, steps, per_call)
      times[name].append((time.perf_counter() - start) / steps * 1e6)
  return times


def time_streaming(dataset_cfg: ml_collections.ConfigDict, global_batch: int, warmup: int,
                   steps: int, repeats: int) -> list[float]:
  """Batches per second of each repetition, a fresh epoch of ``epoch_batches`` each.

  The first ``warmup`` batches of an epoch (which wait for the shuffle buffer to fill)
  are not timed.
  """
  rates = []
  for epoch in range(repeats):
    batches = epoch_batches(dataset_cfg, 'train', SEED, epoch, global_batch,
                            jax.local_device_count())
    for _ in range(warmup):
      batch = next(batches)
    jax.block_until_ready(batch)
    start = time.perf_counter()
    for _ in range(steps):
      batch = next(batches)
    jax.block_until_ready(batch)
    rates.append(steps / (time.perf_counter() - start))
  return rates


def summary(values: Sequence[float]) -> dict[str, Any]:
  return {'median': statistics.median(values), 'mean': statistics.fmean(values),
          'repetitions': list(values)}


def command(argv: Sequence[str]) -> str:
  """The command line that ran, with ``XLA_FLAGS`` when it is set."""
  flags = os.environ.get('XLA_FLAGS', '')
  return ' '.join([f'XLA_FLAGS={flags}'] * bool(flags)
                  + ['python -m benchmarks.input_pipeline', *argv])


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


def first_batch(train: SplitArrays, perm: np.ndarray, num_devices: int, per_device: int
                ) -> dict[str, jax.Array]:
  """A global batch on the devices, laid out as ``epoch_batches`` yields it."""
  index = np.arange(num_devices * per_device, dtype=np.int32).reshape(num_devices, per_device)
  return devices.shard({'image': train.images[perm[index]], 'label': train.labels[perm[index]],
                        'index': index})


def uint8_gathers(step_fn: Any, *args: Any) -> list[str]:
  """The shapes the compiled ``step_fn(*args)`` gathers uint8 data in, e.g. ``u8[128,1,784]``."""
  hlo = step_fn.lower(*args).compile().as_text()
  return sorted(set(re.findall(r'(u8\[[\d,]*\])\{[^}]*\} gather\(', hlo)))


def time_in_memory(args: argparse.Namespace, arrays: DatasetArrays, feed: InMemoryFeed,
                   per_device: int) -> tuple[dict[str, list[float]], list[str]]:
  """µs per update, each repetition, of (a), (a′), the dispatch floor, (b), (b′), (a_K)
  and (b_K); and the train step's ``uint8_gathers``."""
  spec, num_devices = arrays.spec, jax.local_device_count()
  updates_per_epoch = feed.num_local_train // args.batch_size
  context = functools.partial(epoch_context, feed, updates_per_epoch=updates_per_epoch,
                              batch_size=args.batch_size)
  pmap = functools.partial(jax.pmap, axis_name=devices.AXIS)
  data_fns = {flat: pmap(functools.partial(_gather_normalize, per_device_batch=per_device,
                                           flat=flat)) for flat in (True, False)}
  fused_data_fn = pmap(functools.partial(_gather_normalize_fused, per_device_batch=per_device))
  floor_fn = pmap(_advance)
  model = build_model(MODEL, spec.num_classes, 0, axis_name=devices.AXIS)
  tx = build_optimizer(OPTIMIZER)
  compiler = StepCompiler(model, tx, build_lr_schedule(LR_SCHEDULE), augment=False,
                          mean=spec.mean, std=spec.std)
  train_step = compiler.train_step(per_device, 1)
  fixed_step = compiler.train_step(per_device, 1, streaming=True)
  perm = np.asarray(jax.device_get(context(0, 0)[0].perm))[0]
  batch = first_batch(arrays.train, perm, num_devices, per_device)
  state = lambda: devices.replicate(init_train_state(model, tx, SEED, spec.image_shape))
  counts = {}

  def count(k: int) -> jax.Array:
    if k not in counts:
      counts[k] = devices.replicate(np.int32(k))
    return counts[k]

  per_call = min(args.updates_per_dispatch, max_in_flight() or args.updates_per_dispatch)
  counter = devices.replicate(np.int32(0))
  rows = np.zeros((num_devices, per_device, int(np.prod(spec.image_shape))), np.float32)
  labels = np.zeros((num_devices, per_device), np.int32)
  # A data side's carry is its output (counter, x, y); the next call reads the counter.
  steppers: dict[str, tuple[Stepper, Any, int]] = {
      'data_side_us': (lambda out, ctx, k: data_fns[True](out[0], *ctx), (counter,), 1),
      'data_side_images_us': (lambda out, ctx, k: data_fns[False](out[0], *ctx), (counter,), 1),
      'dispatch_floor_us': (lambda step, ctx, k: floor_fn(step, *ctx), counter, 1),
      'train_step_us': (lambda st, ctx, k: train_step(st, *ctx, count(k)), state(), 1),
      'fixed_batch_step_us': (lambda st, ctx, k: fixed_step(st, batch, ctx[1]), state(), 1),
      'fused_data_side_us': (lambda out, ctx, k: fused_data_fn(out, *ctx, count(k)),
                             (counter, devices.shard(rows), devices.shard(labels)), per_call),
      'fused_train_step_us': (lambda st, ctx, k: train_step(st, *ctx, count(k)), state(),
                              per_call),
  }
  gathers = uint8_gathers(train_step, steppers['train_step_us'][1], *context(0, 0), count(1))
  # Epoch 0 warms up; repetition r is epoch r + 1 and starts at update warmup + r·steps.
  return time_interleaved(
      steppers, context(0, 0),
      [context(r + 1, args.warmup + r * args.steps) for r in range(args.repeats)],
      args.warmup, args.steps), gathers


def _percent(part: dict[str, Any], whole: dict[str, Any], minus: dict[str, Any] | None = None
             ) -> dict[str, float]:
  """``100 · (part − minus) / whole`` of the medians and of the means."""
  return {k: 100 * (part[k] - (minus[k] if minus else 0.0)) / whole[k] for k in ('median', 'mean')}


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Runs the timings of ``args`` and returns the results record."""
  dataset_cfg = dataset_config(args.data_dir, args.manual_dir)
  spec = dataset_spec(dataset_cfg)
  num_devices = jax.local_device_count()
  per_device = check_args(args, spec.num_train_examples, num_devices)
  arrays = synthetic_arrays(spec) if args.synthetic else load_dataset_arrays(dataset_cfg)
  feed = InMemoryFeed(arrays, spec, dataset_cfg.eval_batch_size)  # what load_feed builds
  timings, gathers = time_in_memory(args, arrays, feed, per_device)
  times = {k: summary(v) for k, v in timings.items()}
  streaming = None
  if not args.synthetic:
    rates = time_streaming(dataset_cfg, args.batch_size, args.warmup, args.steps, args.repeats)
    streaming = {'batches_per_second': summary(rates),
                 'us_per_batch_median': 1e6 / statistics.median(rates),
                 'batches_timed': args.steps * args.repeats}
  fraction = _percent(times['data_side_us'], times['train_step_us'])
  device = jax.local_devices()[0]
  return {
      'benchmark': 'input_pipeline',
      'command': command(args.argv),
      'dataset': 'synthetic' if args.synthetic else spec.name,
      'num_train_examples': feed.num_local_train,
      'model': 'mlp 784-256-256-10',
      'optimizer': 'momentum SGD, m = 0.9',
      'global_batch': args.batch_size,
      'per_device_batch': per_device,
      'device_platform': device.platform,
      'device_kind': device.device_kind,
      'device_count': num_devices,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'host_cpus': os.cpu_count(),
      'host_load_average_1min': os.getloadavg()[0],
      'jax_version': jax.__version__,
      'packages': package_versions(),
      'git': git_commit(),
      'steps': args.steps,
      'repeats': args.repeats,
      'warmup': args.warmup,
      'updates_per_dispatch': min(args.updates_per_dispatch,
                                  max_in_flight() or args.updates_per_dispatch),
      'steps_timed': args.steps * args.repeats,
      'sync_every': max_in_flight(),
      **times,
      'step_image_gathers': gathers,
      'data_fraction_percent': fraction,
      'image_data_fraction_percent': _percent(times['data_side_images_us'],
                                              times['train_step_us']),
      'data_fraction_net_of_dispatch_percent': _percent(
          times['data_side_us'], times['train_step_us'], minus=times['dispatch_floor_us']),
      'gather_in_step_percent': _percent(times['train_step_us'], times['train_step_us'],
                                         minus=times['fixed_batch_step_us']),
      'fused_data_fraction_percent': _percent(times['fused_data_side_us'],
                                              times['fused_train_step_us']),
      'target_percent': TARGET_PERCENT,
      'meets_target': fraction['median'] < TARGET_PERCENT,
      'streaming': streaming,
  }


def markdown(results: dict[str, Any]) -> str:
  """The results as a small Markdown table."""
  r = results
  rows = [
      ('(a) data side: `take_micro_batches` in a pmap, images out as flat rows, µs/step',
       r['data_side_us'], '{:.1f}'),
      ("(a′) the same, images out as [P, 28, 28, 1], µs/step", r['data_side_images_us'],
       '{:.1f}'),
      ('(b) whole train step, one update per call, µs/step', r['train_step_us'], '{:.1f}'),
      ('dispatch floor: empty pmap, µs/call', r['dispatch_floor_us'], '{:.1f}'),
      (f'(c) data fraction a/b, % (target < {r["target_percent"]:g})',
       r['data_fraction_percent'], '{:.2f}'),
      ("a′/b, %", r['image_data_fraction_percent'], '{:.2f}'),
      ('data fraction net of dispatch (a − floor)/b, %',
       r['data_fraction_net_of_dispatch_percent'], '{:.2f}'),
      ("(b′) train step on a fixed on-device batch (normalize, no gather), µs/step",
       r['fixed_batch_step_us'], '{:.1f}'),
      ("gather's cost inside the step (b − b′)/b, %", r['gather_in_step_percent'], '{:.2f}'),
      (f'(a_K) data side, {r["updates_per_dispatch"]} updates per call, µs/update',
       r['fused_data_side_us'], '{:.1f}'),
      (f'(b_K) train step, {r["updates_per_dispatch"]} updates per call (the loop\'s '
       'default), µs/update', r['fused_train_step_us'], '{:.1f}'),
      ('fused data fraction a_K/b_K, %', r['fused_data_fraction_percent'], '{:.2f}'),
  ]
  if r['streaming'] is not None:
    rows.append(('(d) streaming tf.data → device, batches/s',
                 r['streaming']['batches_per_second'], '{:.0f}'))
  notes = [] if r['streaming'] is not None else ['(d) streaming: not run on synthetic data.']
  verdict = 'meets' if r['meets_target'] else 'misses'
  notes.append(f'The compiled train step gathers its images as '
               f'{", ".join(f"`{g}`" for g in r["step_image_gathers"])}.')
  notes.append(f'The data side {verdict} the < {r["target_percent"]:g}% target.')
  lines = [
      f'# Input pipeline vs train step: {r["dataset"]}, {r["model"]}, batch '
      f'{r["global_batch"]}',
      '',
      f'`{r["command"]}`',
      '',
      f'Device: {r["device_count"]} × {r["device_kind"]} ({r["device_platform"]}, '
      f'{r["per_device_batch"]} examples each) on {r["host_cpus"]} host CPUs, 1-minute load '
      f'{r["host_load_average_1min"]:.1f} at the end; jax {r["jax_version"]}; '
      f'{r["steps_timed"]} steps timed ({r["repeats"]} repetitions of {r["steps"]}, '
      f'after {r["warmup"]} warm-up steps).',
      '',
      '| quantity | median | mean |',
      '| --- | ---: | ---: |',
      *(f'| {name} | {fmt.format(v["median"])} | {fmt.format(v["mean"])} |'
        for name, v, fmt in rows),
  ]
  return '\n'.join(lines + [line for note in notes for line in ('', note)]) + '\n'


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
  args = parse_args(argv)
  results = run(args)
  os.makedirs(args.out_dir, exist_ok=True)
  write_json(os.path.join(args.out_dir, JSON_NAME), results)
  text = markdown(results)
  with open(os.path.join(args.out_dir, MARKDOWN_NAME), 'w') as f:
    f.write(text)
  print(text, end='')
  return results


if __name__ == '__main__':
  try:
    main()
  except ConfigError as e:
    sys.exit(f'error: {e}')
