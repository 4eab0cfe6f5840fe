"""The paper's CIFAR-10 study on 1, 2, 4 and 8 devices: every variant plans (``launch.py
--dry_run``), and every variant trains through each of its phases on 8 devices with its
own batch sizes (128 up to 16,000) and ghost batch norm over 128 examples.

The training test keeps everything of each variant's config but the size: synthetic
CIFAR-shaped data (32×32×3 uint8, 16,000 training and 500 test examples, the sizes
``dataset_spec`` gives for ``train[:16000]`` and ``test[:500]``), 4 epochs with the batch
and LR boundaries moved from 60, 120, 160 to 1, 2, 3, and an MLP with ghost batch norm
(one hidden layer of 16) instead of the 16-4 wide ResNet: a CNN's convolutions made the
five runs take 8 minutes on 2 CPU cores. So each variant runs every phase of its
schedule for an epoch, at least one update (the batch of 16,000 has one), with the
crop-and-flip augmentation, and the batches of 640, 3,200 and 16,000 are spread over 8
devices as 80, 400 and 2,000 per device, their ghost batches of 128 spanning devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from experiments import cifar10_wrn
from lr_study.batching import ghost_layout
from lr_study.data.feeds import InMemoryFeed
from lr_study.data.sources import DatasetArrays, SplitArrays
from lr_study.runtime import run_files
from lr_study.study import resolve_variant
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import prepare_run
from lr_study.training.step import StepCompiler

pytestmark = pytest.mark.slow  # launch.py runs and real training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ('decay', 'hybrid', 'increase', 'increased_initial_lr', 'increased_momentum')
FULL_UPDATES = {'decay': 78000, 'hybrid': 34320, 'increase': 28800,
                'increased_initial_lr': 5820, 'increased_momentum': 1320}
EPOCHS = 4
BOUNDARIES = (1, 2, 3)
TRAIN, TEST = 16000, 500
# A CNN's convolutions cost 250-800 µs per example on 8 fake devices over 2 CPU cores (the
# five variants took 8 minutes); an MLP with ghost batch norm, 25-75 µs.
MODEL = dict(name='mlp', widths=(16,), batch_norm=True)


@pytest.mark.parametrize('num_devices', [1, 2, 4, 8])
def test_dry_run_plans_every_variant(tmp_path, num_devices):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8')
  result = subprocess.run(
      [sys.executable, 'launch.py', '--config=experiments/cifar10_wrn.py', '--dry_run',
       f'--num_devices={num_devices}', f'--workdir={tmp_path}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout.strip().splitlines()[-1]) == FULL_UPDATES
  for variant in VARIANTS:
    plan = run_files.read_json(os.path.join(tmp_path, variant, run_files.PLAN))
    assert plan['num_devices'] == num_devices and plan['ghost_batch_size'] == 128
    for phase in plan['phases']:
      micro = phase['micro_batch_size']
      assert phase['per_device_batch'] * num_devices == phase['batch_size']
      assert micro * phase['accumulation_steps'] == phase['per_device_batch'] and micro <= 3200
      ghost_layout(micro * num_devices, num_devices, 128)  # whole ghosts, or a ConfigError


def _config(variant: str) -> ml_collections.ConfigDict:
  """The variant's own config, scaled down in data, epochs and model only."""
  config = resolve_variant(cifar10_wrn.get_config(), variant)
  with config.ignore_type():
    for key in ('lr_schedule', 'batch_schedule'):
      if 'boundaries' in config[key]:
        config[key].boundaries = BOUNDARIES
    config.model = ml_collections.ConfigDict(MODEL)
  config.num_epochs = EPOCHS
  config.dataset.train_split = f'train[:{TRAIN}]'
  config.dataset.test_split = f'test[:{TEST}]'
  config.dataset.eval_batch_size = 504  # the TEST examples in one step on 1, 2, 4 or 8 devices
  config.train_log_every_updates = 0
  config.checkpoint_every_epochs = 0
  return config


def _synthetic(spec) -> DatasetArrays:
  """uint8 images whose mean colour depends on the label, in the spec's sizes."""
  rng = np.random.default_rng(0)

  def split(n: int) -> SplitArrays:
    labels = rng.integers(0, spec.num_classes, n).astype(np.int32)
    tint = (labels[:, None] * np.array([25, -15, 10]) % 200)[:, None, None, :]
    images = rng.normal(28 + tint, 40, (n, *spec.image_shape))
    return SplitArrays(np.clip(images, 0, 255).astype(np.uint8), labels)

  return DatasetArrays(spec, split(spec.num_train_examples), split(spec.num_test_examples))


@pytest.fixture(scope='module')
def feed():
  setup = prepare_run(_config('decay'))
  assert (setup.spec.num_train_examples, setup.spec.num_test_examples) == (TRAIN, TEST)
  return InMemoryFeed(_synthetic(setup.spec), setup.spec, setup.config.dataset.eval_batch_size)


@pytest.mark.multidevice
@pytest.mark.optimized  # thousands of updates on 8 devices: running them dominates
@pytest.mark.parametrize('variant', VARIANTS)
def test_every_variant_trains_every_phase_on_8_devices(feed, tmp_path, variant):
  assert jax.local_device_count() == 8
  config = _config(variant)
  setup = prepare_run(config)
  plan = setup.plan
  assert config.ghost_batch_size == 128 and plan.num_devices == 8
  full = prepare_run(resolve_variant(cifar10_wrn.get_config(), variant), 8).plan
  # The same batch sizes, per-device batches and LR steps as the full study, an epoch a phase.
  assert [p.batch_size for p in plan.phases] == [p.batch_size for p in full.phases]
  assert [p.lr_multiplier for p in plan.phases] == [p.lr_multiplier for p in full.phases]
  assert [p.per_device_batch for p in plan.phases] == [p.per_device_batch for p in full.phases]
  compiler = StepCompiler(setup.model, setup.tx, plan.lr_schedule,
                          augment=config.dataset.augment, mean=setup.spec.mean,
                          std=setup.spec.std)
  summary = train_and_evaluate(setup, feed, str(tmp_path), 0, compiler, label=variant)
  assert summary['status'] == 'finished'
  assert summary['updates'] == plan.total_updates
  assert summary['compiles'] == len({(p.per_device_batch, p.accumulation_steps)
                                     for p in plan.phases})
  metrics = run_files.read_jsonl(os.path.join(tmp_path, run_files.METRICS))
  assert [m['batch_size'] for m in metrics] == [plan.batch_size_at_epoch(e) for e in range(EPOCHS)]
  assert [m['update'] for m in metrics] == [
      sum(plan.phase_at_epoch(e).updates_per_epoch for e in range(k + 1)) for k in range(EPOCHS)]
  assert all(np.isfinite(m['train_loss']) and m['test_examples'] == TEST for m in metrics)
  # The synthetic classes differ in colour: the model learns them.
  assert metrics[-1]['test_accuracy'] > 0.3, metrics[-1]
