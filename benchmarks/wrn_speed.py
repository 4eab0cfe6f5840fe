r"""WRN-16-4 training speed on synthetic CIFAR-shaped data: images/s and model FLOP utilisation.

    python -m benchmarks.wrn_speed [--batch_sizes=128,1024] [--dtypes=float32,bfloat16]
        [--updates=20] [--rounds=5] [--depth=16 --width=4] [--out_dir=DIR]

The paper's CIFAR-10 setup (``experiments/cifar10_wrn.py``: the 16-4 wide ResNet, ghost
batch norm over 128 examples, SGD with momentum 0.9 and weight decay 5e-4, crop-and-flip
augmentation) trained by lr_study's own step (``StepCompiler``: pmapped over every local
device, ``--updates`` updates per call, each gathering its batch from a device-resident
split of random uint8 32×32×3 images), at each global batch size and compute dtype
(``config.compute_dtype``).

* **images/s**: B · updates ÷ seconds of one call, the median of ``--rounds`` calls after
  a first call that compiles.
* **FLOPs per image**: XLA's cost analysis of the compiled forward and backward pass
  (the gradient of the mean loss, batch-norm statistics updated) of one device's batch,
  divided by that batch; the optimizer's few FLOPs per parameter are left out.
* **MFU**: FLOPs per image × images/s ÷ the peak of all local devices for that dtype
  (:data:`PEAK_TFLOPS`, dense, per chip; float32 on a GPU is TF32 on the tensor cores,
  what XLA's default precision uses there; on a TPU both dtypes run on the bf16 units).
  An unknown device kind (a CPU) has no MFU.

Writes ``wrn_speed.json`` and ``wrn_speed.md`` to ``--out_dir``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from experiments import cifar10_wrn
from lr_study.config import COMPUTE_DTYPES
from lr_study.data.feeds import InMemoryFeed
from lr_study.data.sources import DatasetArrays, SplitArrays
from lr_study.data.specs import dataset_spec
from lr_study.models import build_model
from lr_study.optimizers import build_optimizer
from lr_study.runtime import devices
from lr_study.schedules import build_lr_schedule, clock
from lr_study.training.step import (StepCompiler, StepInputs, cross_entropy_and_accuracy,
                                    init_train_state)

# Dense peak TFLOP/s per chip, by the first key that jax's device_kind contains.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    'H100 PCIe': {'bfloat16': 756.0, 'float32': 378.0},
    'H100': {'bfloat16': 989.4, 'float32': 494.7},  # SXM
    'H200': {'bfloat16': 989.4, 'float32': 494.7},
    'A100': {'bfloat16': 312.0, 'float32': 156.0},
    'T4': {'float32': 8.1},  # no bfloat16 units
    'TPU v4': {'bfloat16': 275.0, 'float32': 275.0},
    'TPU v5 lite': {'bfloat16': 197.0, 'float32': 197.0},
    'TPU v5': {'bfloat16': 459.0, 'float32': 459.0},
    'TPU v6 lite': {'bfloat16': 918.0, 'float32': 918.0},
}
SEED = 0

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_list('batch_sizes', ['128', '1024'], 'Global batch sizes.')
  flags.DEFINE_multi_enum('dtypes', list(COMPUTE_DTYPES), COMPUTE_DTYPES,
                          'Compute dtypes (config.compute_dtype).')
  flags.DEFINE_integer('updates', 20, 'Updates per timed call.', lower_bound=1)
  flags.DEFINE_integer('rounds', 5, 'Timed calls per setting.', lower_bound=1)
  flags.DEFINE_integer('depth', 16, 'WRN depth (6N + 4).')
  flags.DEFINE_integer('width', 4, 'WRN width factor.')
  flags.DEFINE_string('out_dir', os.path.join('benchmarks', 'results'),
                      'Where wrn_speed.json and wrn_speed.md go.')


def peak_tflops(device_kind: str, dtype: str) -> float | None:
  """The dense peak of one chip of ``device_kind`` in ``dtype``; None if not tabulated."""
  for key, peaks in PEAK_TFLOPS.items():
    if key in device_kind:
      return peaks.get(dtype)
  return None


def _data(batch_size: int) -> tuple[Any, Any]:
  """(the training split in one epoch's order, its spec): 4 batches of random uint8
  CIFAR-shaped images and labels on every device."""
  dataset = cifar10_wrn.get_config().dataset
  dataset.train_split, dataset.test_split = f'train[:{4 * batch_size}]', 'test[:8]'
  spec = dataset_spec(dataset)
  rng = np.random.default_rng(SEED)
  split = lambda n: SplitArrays(rng.integers(0, 256, (n, *spec.image_shape), np.uint8),
                                rng.integers(0, spec.num_classes, n).astype(np.int32))
  feed = InMemoryFeed(DatasetArrays(spec, split(spec.num_train_examples), split(8)), spec, 8)
  return feed.ordered(SEED, 0), spec


def _inputs(batch_size: int) -> StepInputs:
  """One phase of 4 updates an epoch at ``batch_size``, LR multiplier 1."""
  phase = dict(first_update=0, start_epoch=0, updates_per_epoch=4, batch_size=batch_size,
               start_offset=0, epoch_examples=4 * batch_size)
  table = clock.PhaseTable(lr_multiplier=np.float32([1.0]),
                           **{k: np.int32([v]) for k, v in phase.items()})
  return devices.replicate(StepInputs(np.int32(SEED), table, np.float32(1.0)))


def flops_per_image(model: Any, state: Any, per_device_batch: int,
                    shape: Sequence[int]) -> float:
  """XLA's cost analysis of one device's forward and backward pass, per image."""

  def gradient(params, batch_stats, x, y):
    def loss(p):
      logits, _ = model.apply({'params': p, 'batch_stats': batch_stats}, x, train=True,
                              mutable=['batch_stats'])
      return cross_entropy_and_accuracy(logits, y)[0].mean()
    return jax.grad(loss)(params)

  x = jnp.zeros((per_device_batch, *shape), jnp.float32)
  y = jnp.zeros((per_device_batch,), jnp.int32)
  cost = jax.jit(gradient).lower(state.params, state.batch_stats, x, y).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost['flops']) / per_device_batch


def measure(batch_size: int, dtype: str, updates: int, rounds: int, depth: int,
            width: int) -> dict[str, Any]:
  """images/s, FLOPs per image and MFU of the train step at ``batch_size`` in ``dtype``."""
  config = cifar10_wrn.get_config()
  model = build_model({**config.model.to_dict(), 'depth': depth, 'width': width}, 10,
                      config.ghost_batch_size, axis_name=devices.AXIS, dtype=dtype)
  tx = build_optimizer(config.optimizer)
  num_devices = jax.local_device_count()
  split, spec = _data(batch_size)
  host_state = init_train_state(model, tx, SEED, spec.image_shape)
  step = StepCompiler(model, tx, build_lr_schedule({'name': 'constant', 'init_value': 0.1}),
                      augment=True, mean=spec.mean, std=spec.std).dispatcher(
                          batch_size // num_devices, 1, streaming=False)
  state, inputs = devices.replicate(host_state), _inputs(batch_size)
  state = jax.block_until_ready(step(state, (split,), inputs, updates))  # compiles
  seconds = []
  for _ in range(rounds):
    start = time.perf_counter()
    state = jax.block_until_ready(step(state, (split,), inputs, updates))
    seconds.append(time.perf_counter() - start)
  images_per_s = batch_size * updates / statistics.median(seconds)
  flops = flops_per_image(model, host_state, batch_size // num_devices, spec.image_shape)
  peak = peak_tflops(jax.devices()[0].device_kind, dtype)
  achieved = flops * images_per_s / 1e12
  return {'batch_size': batch_size, 'dtype': dtype, 'images_per_s': images_per_s,
          'seconds_per_call': seconds, 'flops_per_image': flops, 'tflops_per_s': achieved,
          'peak_tflops': peak * num_devices if peak else None,
          'mfu': achieved / (peak * num_devices) if peak else None,
          'diverged_at': int(devices.unreplicate(state.diverged_at))}


def markdown(record: dict[str, Any]) -> str:
  """The results as a Markdown table, bfloat16 against float32 at each batch size."""
  lines = [f'# WRN-{record["depth"]}-{record["width"]} train step on synthetic CIFAR-shaped '
           'data', '', f'`{record["command"]}`', '',
           f'Device: {record["device_count"]} × {record["device_kind"]} '
           f'({record["platform"]}); jax {record["jax"]}; {record["updates"]} updates per '
           f'call, median of {record["rounds"]} calls.', '',
           '| B | dtype | images/s | × float32 | GFLOP/image | TFLOP/s | MFU |',
           '| ---: | --- | ---: | ---: | ---: | ---: | ---: |']
  f32 = {r['batch_size']: r['images_per_s'] for r in record['results']
         if r['dtype'] == 'float32'}
  for r in record['results']:
    ratio = r['images_per_s'] / f32[r['batch_size']] if r['batch_size'] in f32 else None
    mfu = f'{100 * r["mfu"]:.1f}%' if r['mfu'] is not None else 'n/a'
    lines.append(f'| {r["batch_size"]} | {r["dtype"]} | {r["images_per_s"]:,.0f} | '
                 f'{f"{ratio:.2f}" if ratio else "n/a"} | {r["flops_per_image"] / 1e9:.3f} | '
                 f'{r["tflops_per_s"]:.2f} | {mfu} |')
  return '\n'.join(lines) + '\n'


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.ERROR)
  results = [measure(int(b), dtype, FLAGS.updates, FLAGS.rounds, FLAGS.depth, FLAGS.width)
             for b in FLAGS.batch_sizes for dtype in FLAGS.dtypes]
  device = jax.devices()[0]
  record = {'benchmark': 'wrn_speed', 'command': ' '.join(['python -m benchmarks.wrn_speed',
                                                           *sys.argv[1:]]),
            'device_kind': device.device_kind, 'platform': device.platform,
            'device_count': jax.local_device_count(), 'jax': jax.__version__,
            'depth': FLAGS.depth, 'width': FLAGS.width, 'updates': FLAGS.updates,
            'rounds': FLAGS.rounds, 'results': results}
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  with open(os.path.join(FLAGS.out_dir, 'wrn_speed.json'), 'w') as f:
    json.dump(record, f, indent=2)
  text = markdown(record)
  with open(os.path.join(FLAGS.out_dir, 'wrn_speed.md'), 'w') as f:
    f.write(text)
  print(text, end='')


if __name__ == '__main__':
  define_flags()
  app.run(main)
