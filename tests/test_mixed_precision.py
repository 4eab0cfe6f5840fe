"""Mixed precision, ``config.compute_dtype='bfloat16'``, on the CPU: the layers compute in
bfloat16; parameters, optimizer state, batch-norm statistics, the loss and its
reduction, and the gradient noise measurement stay float32; a bfloat16 WRN and MLP
train to within a stated tolerance of float32 on synthetic CIFAR-shaped (RGB) data."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_study import config as schema
from lr_study.data.in_memory import DeviceData, epoch_permutation
from lr_study.models import build_model
from lr_study.optimizers import build_optimizer
from lr_study.runtime import devices
from lr_study.schedules import build_lr_schedule, clock
from lr_study.training import gradient_noise
from lr_study.training.setup import prepare_run
from lr_study.training.step import (StepCompiler, StepInputs, cross_entropy_and_accuracy,
                                    init_train_state)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, SHAPE, BATCH = 256, (8, 8, 3), 16  # RGB images as CIFAR's, 8×8 to keep the CPU test short
MEAN, STD = np.float32([0.5] * 3), np.float32([0.25] * 3)
NOISE = (30, 120)  # pixel scale of the class images, of the noise
MLP = {'name': 'mlp', 'widths': (64,), 'batch_norm': True}
WRN = {'name': 'wide_resnet', 'depth': 10, 'width': 1}
CNN = {'name': 'cnn', 'features': (8,), 'dense_widths': (16,), 'batch_norm': True}
# Over UPDATES updates the float32 and bfloat16 runs' mean training losses differ by at
# most LOSS_TOL, and their accuracies on N held-out examples by at most ACCURACY_TOL
# (measured: mlp 0.0000 and 0.004, wrn 0.005 and 0.024); both learn: mean training loss
# below half of ln 10, held-out accuracy above 3 times chance.
UPDATES = {'mlp': 320, 'wrn': 120}
LOSS_TOL, ACCURACY_TOL = 0.05, 0.06


def _data(split: int) -> tuple[np.ndarray, np.ndarray]:
  """N examples of ten classes, each class a fixed random image plus pixel noise drawn
  afresh for each ``split`` (0: training, 1: held out): learnable, not perfectly."""
  prototypes = np.random.default_rng(0).normal(size=(10, *SHAPE))
  rng = np.random.default_rng(1 + split)
  labels = rng.integers(0, 10, N).astype(np.int32)
  noisy = 128 + NOISE[0] * prototypes[labels] + rng.normal(0, NOISE[1], (N, *SHAPE))
  return np.clip(noisy, 0, 255).astype(np.uint8), labels


def _optimizer():
  return build_optimizer({'name': 'momentum', 'momentum': 0.9, 'weight_decay': 5e-4})


def _floating_dtypes(tree) -> set[str]:
  return {str(x.dtype) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


@pytest.mark.parametrize('model_cfg', [  # the wide ResNet compiles for seconds
    pytest.param(MLP, id='mlp'), pytest.param(WRN, id='wrn', marks=pytest.mark.slow),
    pytest.param(CNN, id='cnn')])
def test_bfloat16_models_compute_in_bfloat16_from_float32_parameters_and_statistics(model_cfg):
  model = build_model(model_cfg, 10, 0, dtype='bfloat16')
  state = init_train_state(model, _optimizer(), 0, SHAPE)
  assert _floating_dtypes((state.params, state.batch_stats, state.opt_state)) == {'float32'}
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  x = jnp.zeros((4, *SHAPE), jnp.float32)
  apply = lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats'])
  logits, new_vars = apply(variables, x)
  assert logits.dtype == jnp.bfloat16
  assert _floating_dtypes(new_vars) == {'float32'}
  products = [eqn for eqn in _equations(jax.make_jaxpr(apply)(variables, x).jaxpr)
              if eqn.primitive.name in ('dot_general', 'conv_general_dilated')]
  assert products and all(v.aval.dtype == jnp.bfloat16 for eqn in products for v in eqn.invars)


def _equations(jaxpr):
  for eqn in jaxpr.eqns:
    yield eqn
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      yield from _equations(sub)


def test_float32_models_are_unchanged_by_the_dtype_arguments():
  default = build_model(MLP, 10, 0)
  assert default == build_model(MLP, 10, 0, dtype='float32')
  assert default.dtype == default.param_dtype == jnp.float32


def test_the_loss_of_bfloat16_logits_is_reduced_in_float32():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(5, 10)), jnp.bfloat16)
  labels = jnp.arange(5)
  loss, correct = cross_entropy_and_accuracy(logits, labels)
  assert loss.dtype == correct.dtype == jnp.float32
  expected, _ = cross_entropy_and_accuracy(logits.astype(jnp.float32), labels)
  np.testing.assert_array_equal(loss, expected)


def test_the_gradient_noise_measurement_runs_the_model_in_float32(monkeypatch):
  measured = []
  monkeypatch.setattr(gradient_noise, 'measure_fn', lambda model, *a: measured.append(model))
  model = build_model(MLP, 10, 0, dtype='bfloat16')
  feed = types.SimpleNamespace(streaming=False, num_local_train=N)
  gradient_noise.meter(feed, model, 8, 0)
  assert measured[0].dtype == jnp.float32 and measured[0].param_dtype == jnp.float32
  assert measured[0] == model.clone(dtype=jnp.float32)


@pytest.mark.parametrize('compute_dtype', ['float32', 'bfloat16'])
def test_config_compute_dtype_reaches_the_model(compute_dtype):
  config = schema.get_config()  # one run's config: no variants
  del config['variants'], config['run_variants']
  config.compute_dtype = compute_dtype
  model = prepare_run(config, num_devices=1).model
  assert (model.dtype, model.param_dtype) == (jnp.dtype(compute_dtype), jnp.float32)


@pytest.mark.slow
def test_a_bad_compute_dtype_is_one_line_and_exit_status_2(tmp_path):
  result = subprocess.run(
      [sys.executable, 'launch.py', '--config.compute_dtype=float16', '--dry_run',
       f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, check=False)
  assert result.returncode == 2
  assert result.stderr.strip() == ("launch.py: error: compute_dtype must be one of 'float32', "
                                   "'bfloat16', got 'float16'")


@dataclasses.dataclass
class _Phase:  # the one phase of the synthetic runs (clock.PhaseTable.from_phases)
  first_update: int = 0
  start_epoch: int = 0
  updates_per_epoch: int = N // BATCH
  lr_multiplier: float = 1.0
  batch_size: int = BATCH
  start_offset: int = 0
  epoch_examples: int = N // BATCH * BATCH


def _train(model_cfg: dict, dtype: str, updates: int) -> tuple[float, float, float]:
  """The mean training loss over ``updates`` updates of SGD with momentum at B = BATCH,
  in ``dtype`` with ghost batch norm over the whole batch, then the held-out loss and
  accuracy (running batch-norm statistics)."""
  model = build_model(model_cfg, 10, BATCH, axis_name=devices.AXIS, dtype=dtype)
  tx = _optimizer()
  schedule = build_lr_schedule({'name': 'constant', 'init_value': 0.05})
  images, labels = _data(0)
  split = devices.replicate(DeviceData(images, labels, MEAN, STD, np.int32(0),
                                       epoch_permutation(0, 0, N)))
  split = split.replace(local_device=devices.shard(np.arange(jax.local_device_count(),
                                                             dtype=np.int32)))
  table = clock.PhaseTable.from_phases([_Phase()], updates * BATCH // N + 1)
  inputs = devices.replicate(StepInputs(np.int32(0), table, np.float32(1)))
  step = StepCompiler(model, tx, schedule, augment=False).dispatcher(
      BATCH // jax.local_device_count(), 1, streaming=False)
  state = step(devices.replicate(init_train_state(model, tx, 0, SHAPE)), (split,), inputs,
               updates)
  final = devices.unreplicate(state)
  images, labels = _data(1)
  logits = model.apply({'params': final.params, 'batch_stats': final.batch_stats},
                       (images / 255 - MEAN) / STD, train=False)
  loss, correct = cross_entropy_and_accuracy(logits, labels)
  return float(final.metrics.loss) / updates, float(loss.mean()), float(correct.mean())


@pytest.mark.slow
@pytest.mark.parametrize('name,model_cfg', [  # the WRN, optimized, trains 2.3x faster
    ('mlp', MLP), pytest.param('wrn', WRN, marks=pytest.mark.optimized)])
def test_bfloat16_trains_to_within_tolerance_of_float32(name, model_cfg):
  f32 = _train(model_cfg, 'float32', UPDATES[name])
  bf16 = _train(model_cfg, 'bfloat16', UPDATES[name])
  print(f'{name} (mean training loss, held-out loss, held-out accuracy): float32 '
        f'{np.round(f32, 4)}, bfloat16 {np.round(bf16, 4)}')
  for train_loss, _, accuracy in (f32, bf16):
    assert train_loss < np.log(10) / 2 and accuracy > 0.3
  assert abs(bf16[0] - f32[0]) <= LOSS_TOL
  assert abs(bf16[2] - f32[2]) <= ACCURACY_TOL
