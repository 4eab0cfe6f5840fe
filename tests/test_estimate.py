"""The plan-time estimate (lr_study.estimate): XLA's FLOP counts and the cost model."""

from __future__ import annotations

import math
import os

import pytest

from lr_study import estimate, experiment
from lr_study.data.specs import dataset_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOUR = 3600


def _load(config_arg: str, *overrides: str):
  return experiment.load(config_arg, overrides, root=ROOT)


def test_the_mlp_costs_two_flops_per_weight_forward_and_about_twice_that_backward():
  config = _load('experiments/mnist_decay_vs_batch.py')
  spec = dataset_spec(config.dataset)
  cost = estimate.model_cost(config.model, spec.image_shape, spec.num_classes, 0)
  weights = 784 * 256 + 256 * 256 + 256 * 10
  assert cost.eval_flops == pytest.approx(2 * weights, rel=0.01)
  assert 2 * cost.eval_flops < cost.train_flops < 3 * cost.eval_flops  # no input gradient
  assert cost.lines > 50


def test_each_update_evaluation_and_noise_chunk_costs_c_where_flops_are_free():
  config = _load('experiments/digits_study.py:decay', '--config.epochs_scale=0.1')
  unit = estimate.Device('unit', math.inf, 1.0, 0.0, '')
  est = estimate.estimate(config, unit)
  runs, evaluations, measurements = len(config.seeds), 4, 1  # every 10 epochs, of 4
  chunk = config.get('gradient_noise_batch_size', 0)
  noise_chunks = math.ceil(1437 / chunk) if chunk else 0  # the whole split: N < 8,192
  assert est.runs == runs and est.updates == runs * 4 * (1437 // 8)  # B = 8 for 4 epochs
  assert est.seconds == est.updates + runs * (evaluations + measurements * noise_chunks)
  twice = estimate.estimate(config, estimate.Device('unit', math.inf, 2.0, 0.0, ''))
  assert twice.seconds == 2 * est.seconds


def test_the_notebooks_default_fits_one_sitting_on_one_v5e_chip_or_a_t4_and_cifar_does_not():
  mnist = _load('experiments/mnist_decay_vs_batch.py')
  cifar_short = _load('experiments/cifar10_wrn.py', '--config.epochs_scale=0.1')
  for kind in ('TPU v5 lite', 'Tesla T4'):
    device = estimate.device_profile(kind)
    assert estimate.estimate(mnist, device).seconds < HOUR / 2, kind
  assert estimate.estimate(cifar_short, estimate.device_profile('TPU v5 lite')).seconds < HOUR
  assert estimate.estimate(cifar_short, estimate.device_profile('Tesla T4')).seconds > HOUR


def test_device_profiles_are_found_by_jax_device_kind():
  assert estimate.device_profile('TPU v5 lite').name == 'one TPU v5e chip'
  assert estimate.device_profile('Tesla T4').name == 'one NVIDIA T4'
  assert estimate.device_profile('cpu').name == 'the CPU'
  assert estimate.device_profile('NVIDIA H100 80GB HBM3') is None


def test_the_estimate_says_its_device_size_and_model():
  config = _load('experiments/digits_study.py', '--config.epochs_scale=0.1', '--config.seeds=0,')
  text = estimate.estimate(config, estimate.device_profile('Tesla T4')).describe()
  assert text.startswith('≈ ') and 'on one NVIDIA T4 for 3 run(s), 1,265 updates' in text


def test_a_device_without_a_profile_gets_the_reference_estimates():
  config = _load('experiments/digits_study.py', '--config.epochs_scale=0.1', '--config.seeds=0,')
  lines = estimate.for_runtime(config, 'NVIDIA H100 80GB HBM3', 1).splitlines()
  assert lines[0] == 'No cost model for NVIDIA H100 80GB HBM3; for reference:'
  assert 'one TPU v5e chip' in lines[1] and 'one NVIDIA T4' in lines[2]
  assert estimate.for_runtime(config, 'cpu', 8).startswith('Estimated time: ≈ ')
