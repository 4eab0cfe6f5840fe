r"""How long a study takes on a device, from its plans, before it trains.

Each run's time is a cost model of its plan (``lr_study.plan``) on D devices:

    T_run = Σ_phases u_p · (k_p · c + B_p/D · f / F)            (updates)
          + E · (V · f_eval / (D · F) + ⌈V / b_eval⌉ · c)         (evaluations)
          + M · (n · f / (D · F) + ⌈n / b_noise⌉ · c)             (noise-scale measurements)

    T_study = Σ_runs T_run + Σ_variants s_v · L · C

u_p updates of phase p at global batch B_p in k_p accumulated micro-batches; f and f_eval:
the FLOPs of one example's loss gradient and of its forward pass, as XLA counts them for
the model, and L, the lines of the gradient's StableHLO (:func:`model_cost`); E = ⌈num_epochs / eval_every_epochs⌉ evaluations of the
V test and validation examples in global batches of b_eval (each split apart); where the config measures the
gradient noise scale, M = ⌈num_epochs / gradient_noise_every_epochs⌉ measurements of n
training examples in chunks of b_noise (``gradient_noise_examples``, at most N, 0: all N,
and ``gradient_noise_batch_size``); s_v distinct
step shapes of variant v, each compiled once for all its seeds. A dynamic batch schedule
counts as planned (B held), an upper bound on its updates.

The device enters through three numbers (:class:`Device`): F, the FLOP/s the train step
sustains; c, the fixed cost of one micro-batch update (kernel launches, the batch
gather, the LR clock); C, the compile time per line of StableHLO. :data:`DEVICES` holds
them for one Colab TPU v5e chip, one T4 and a CPU, and says where each comes from.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lr_study import batching, study
from lr_study.models import build_model
from lr_study.training.setup import prepare_run


@dataclasses.dataclass(frozen=True)
class Device:
  """F (``flops``, FLOP/s), c (``update_s``, s), C (``compile_s``, s per StableHLO line),
  and where they come from."""

  name: str
  flops: float
  update_s: float
  compile_s: float
  source: str


# F is a quarter of the chip's peak (jax's default precision: bf16 passes on a TPU, FP32
# on a T4, which has no TF32), a convnet's share of it. c is the per-update time measured
# on an H200 for the MNIST MLP at B = 64 with 32 updates per call (96 µs, README:
# Benchmarks), where the FLOPs are negligible. C on 2 CPU cores: the digits study's train
# step (its MLP's gradient is 142 lines) compiles in about 2.4 s per shape under `make
# notebook`; an accelerator is assumed to take twice as long. The CPU's F and c fit the
# MNIST MLP's throughput on 2 cores (README: 188k and 293k examples/s at B = 64 and
# 1024); convolutions run ~40x below that F on a CPU (the WRN's gradient: 10 GFLOP/s).
DEVICES = {
    'TPU v5 lite': Device('one TPU v5e chip', 197e12 / 4, 100e-6, 35e-3,
                          'F = 197 TFLOP/s bf16 peak / 4, c = 100 µs per update'),
    'Tesla T4': Device('one NVIDIA T4', 8.1e12 / 4, 100e-6, 35e-3,
                       'F = 8.1 TFLOP/s FP32 peak / 4, c = 100 µs per update'),
    'cpu': Device('the CPU', 0.37e12, 130e-6, 17e-3,
                  'F = 370 GFLOP/s and c = 130 µs, fit to an MLP on 2 cores'),
}


def device_profile(device_kind: str) -> Device | None:
  """The :data:`DEVICES` entry whose key is in ``device_kind`` (``jax.devices()[0].device_kind``,
  e.g. 'TPU v5 lite', 'Tesla T4', 'cpu'); None for another device."""
  return next((d for key, d in DEVICES.items() if key.lower() in device_kind.lower()), None)


@dataclasses.dataclass(frozen=True)
class ModelCost:
  """f (``train_flops``) and f_eval (``eval_flops``) per example; L (``lines``)."""

  train_flops: float
  eval_flops: float
  lines: int


def model_cost(model_config: Any, image_shape: tuple[int, ...], num_classes: int,
               ghost_batch_size: int) -> ModelCost:
  """XLA's FLOP counts per example of the loss gradient in training mode and of the
  forward pass, and the gradient's StableHLO lines, lowered on abstract shapes (nothing
  is compiled or run)."""
  model = build_model(model_config, num_classes, ghost_batch_size)
  batch = ghost_batch_size or 64
  x = jax.ShapeDtypeStruct((batch, *image_shape), jnp.float32)
  y = jax.ShapeDtypeStruct((batch,), jnp.int32)
  key = jax.random.key(0)
  variables = jax.eval_shape(lambda: model.init({'params': key, 'dropout': key},
                                                jnp.zeros((1, *image_shape)), train=False))
  params, stats = variables['params'], variables.get('batch_stats', {})

  def loss(p, s, x, y):
    logits, _ = model.apply({'params': p, 'batch_stats': s}, x, train=True,
                            rngs={'dropout': key}, mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def forward(p, s, x):
    return model.apply({'params': p, 'batch_stats': s}, x, train=False)

  train = jax.jit(jax.grad(loss)).lower(params, stats, x, y)
  evaluate = jax.jit(forward).lower(params, stats, x)
  return ModelCost(train.cost_analysis()['flops'] / batch,
                   evaluate.cost_analysis()['flops'] / batch, train.as_text().count('\n'))


@dataclasses.dataclass(frozen=True)
class Estimate:
  """``seconds`` of the whole study on ``device``; ``runs`` and ``updates``, its size."""

  device: Device
  seconds: float
  runs: int
  updates: int

  def describe(self) -> str:
    return (f'≈ {_duration(self.seconds)} on {self.device.name} for {self.runs} run(s), '
            f'{self.updates:,} updates (cost model: lr_study.estimate; {self.device.source})')


def _duration(seconds: float) -> str:
  if seconds < 120:
    return f'{seconds:.0f} s'
  return f'{seconds / 60:.0f} min' if seconds < 7200 else f'{seconds / 3600:.1f} h'


def estimate(config: ml_collections.ConfigDict, device: Device, num_devices: int = 1) -> Estimate:
  """The cost model's time for every run of the study ``config`` (module docstring)."""
  d, c, flops = num_devices, device.update_s, device.flops
  seconds, updates, runs, cache = 0.0, 0, 0, {}
  seeds = len(config.seeds)
  for variant in study.variant_configs(config).values():
    setup = prepare_run(variant, num_devices)
    run, plan, spec = setup.config, setup.plan, setup.spec
    key = json.dumps([run.model.to_dict(), run.ghost_batch_size])
    if key not in cache:
      cache[key] = model_cost(run.model, spec.image_shape, spec.num_classes,
                              run.ghost_batch_size)
    f, f_eval = cache[key].train_flops, cache[key].eval_flops
    train = sum(p.updates * (p.accumulation_steps * c + p.batch_size / d * f / flops)
                for p in plan.phases)
    evaluations = math.ceil(plan.num_epochs / run.eval_every_epochs)
    splits = [n for n in (spec.num_test_examples, spec.num_validation_examples) if n]
    steps = sum(batching.eval_layout(n, run.dataset.eval_batch_size, d).steps for n in splits)
    evaluate = sum(splits) * f_eval / (d * flops) + steps * c
    chunk = run.get('gradient_noise_batch_size', 0)
    n = min(run.get('gradient_noise_examples', 0) or spec.num_train_examples,
            spec.num_train_examples)
    measurements = math.ceil(plan.num_epochs / run.get('gradient_noise_every_epochs', 1))
    noise = measurements * (n * f / (d * flops) + math.ceil(n / chunk) * c) if chunk else 0.0
    shapes = {(p.per_device_batch, p.accumulation_steps) for p in plan.phases}
    seconds += (seeds * (train + evaluations * evaluate + noise)
                + len(shapes) * cache[key].lines * device.compile_s)
    updates += seeds * plan.total_updates
    runs += seeds
  return Estimate(device, seconds, runs, updates)


REFERENCES = ('TPU v5 lite', 'Tesla T4')  # Colab's TPU and free GPU runtimes


def for_runtime(config: ml_collections.ConfigDict, device_kind: str, num_devices: int) -> str:
  """The estimate on this runtime's ``num_devices`` devices of ``device_kind``, one line;
  for a device without a profile, on each of :data:`REFERENCES` (one device)."""
  device = device_profile(device_kind)
  if device is not None:
    return f'Estimated time: {estimate(config, device, num_devices).describe()}'
  return '\n'.join([f'No cost model for {device_kind}; for reference:', *(
      f'  {estimate(config, device_profile(kind)).describe()}' for kind in REFERENCES)])
