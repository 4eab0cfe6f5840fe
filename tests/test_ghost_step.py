"""The real train step with ghost batch norm 128 and a global batch of 640: the same
parameters and running statistics on 1, 4 and 8 devices, with and without gradient
accumulation.

``StepCompiler``'s step is pmapped over every local device (``jax.pmap`` with no
``devices=``), so each device count runs in its own process: the 8-device runs here
(the multidevice pytest run's 8 fake CPU devices), the 1- and 4-device runs in
subprocesses started with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``, which
save their final state with ``np.savez`` (``python tests/test_ghost_step.py OUT.npz N
PER_DEVICE:K ...``).

The layouts, with the batch of 640 in 5 ghosts of 128 consecutive examples:

* 1 device × 640: every ghost on the device (no communication);
* 1 device × 5 micro-batches of 128: one ghost per micro-batch, accumulated;
* 4 devices × 160 and 8 devices × 80: ghosts span devices (``lax.psum`` of their sums);
* 4 devices × 5 × 32 and 8 devices × 5 × 16: each micro-batch one ghost over all devices.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.multidevice]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 640
GHOST = 128
UPDATES = 6
N = GLOBAL_BATCH * 3  # 3 updates per epoch: the run crosses into a second epoch
SHAPE = (8, 8, 1)
MEAN, STD = np.float32([0.5]), np.float32([0.25])
TOLERANCE = 1e-5

# (devices, per-device batch, micro-batches per update), all the global batch of 640.
LAYOUTS = {1: [(640, 1), (640, 5)], 4: [(160, 1), (160, 5)], 8: [(80, 1), (80, 5)]}


@dataclasses.dataclass
class _Phase:
  first_update: int = 0
  start_epoch: int = 0
  updates_per_epoch: int = N // GLOBAL_BATCH
  lr_multiplier: float = 1.0
  batch_size: int = GLOBAL_BATCH
  start_offset: int = 0
  epoch_examples: int = N // GLOBAL_BATCH * GLOBAL_BATCH


def _data() -> tuple[np.ndarray, np.ndarray]:
  """Images whose class shifts their mean, so the model learns and batch norm matters."""
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, N).astype(np.int32)
  images = rng.normal(100 + 12 * labels[:, None, None, None], 40, (N, *SHAPE))
  return np.clip(images, 0, 255).astype(np.uint8), labels


def train(per_device: int, accumulation: int, updates: int = UPDATES) -> dict[str, np.ndarray]:
  """``updates`` updates of the real pmapped train step on every local device, each on a
  global batch of ``per_device × devices``; the final params and batch stats, flat."""
  import flax.traverse_util  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  from lr_study.data.in_memory import DeviceData, epoch_permutation  # pylint: disable=g-import-not-at-top
  from lr_study.models import build_model  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import devices  # pylint: disable=g-import-not-at-top
  from lr_study.schedules import build_lr_schedule, clock  # pylint: disable=g-import-not-at-top
  from lr_study.optimizers import build_optimizer  # pylint: disable=g-import-not-at-top
  from lr_study.training.step import StepCompiler, StepInputs, init_train_state  # pylint: disable=g-import-not-at-top

  num_devices = jax.local_device_count()
  assert per_device * num_devices == GLOBAL_BATCH, (per_device, num_devices)
  model = build_model({'name': 'mlp', 'widths': (32,), 'batch_norm': True}, 10,
                      ghost_batch_size=GHOST, axis_name=devices.AXIS)
  tx = build_optimizer({'name': 'momentum', 'momentum': 0.9, 'weight_decay': 5e-4})
  schedule = build_lr_schedule({'name': 'constant', 'init_value': 0.1})
  compiler = StepCompiler(model, tx, schedule, augment=False)
  images, labels = _data()
  table = clock.PhaseTable.from_phases([_Phase()], 4)
  inputs = devices.replicate(StepInputs(np.int32(0), table, np.float32(1.0)))
  state = devices.replicate(init_train_state(model, tx, 0, SHAPE))
  dispatch = compiler.dispatcher(per_device, accumulation, streaming=False)
  done = 0
  for epoch in range(updates // (N // GLOBAL_BATCH) + 1):
    perm = np.asarray(epoch_permutation(0, epoch, N))
    split = devices.replicate(DeviceData(images, labels, MEAN, STD, np.int32(0), perm))
    split = split.replace(local_device=devices.shard(np.arange(num_devices, dtype=np.int32)))
    for _ in range(min(N // GLOBAL_BATCH, updates - done)):
      state = jax.block_until_ready(dispatch(state, (split,), inputs, 1))
      done += 1
  host = devices.unreplicate(state)
  assert int(host.step) == updates and int(host.diverged_at) == 0
  flat = flax.traverse_util.flatten_dict({'params': host.params, 'batch_stats': host.batch_stats},
                                         sep='/')
  return {key: np.asarray(value) for key, value in flat.items()}


def _layout_key(num_devices: int, per_device: int, accumulation: int) -> str:
  return f'{num_devices}x{per_device}x{accumulation}'


def _in_subprocesses(tmp_path) -> dict[str, dict[str, np.ndarray]]:
  """The 1- and 4-device layouts, each device count in its own process (concurrently)."""
  processes = {}
  for num_devices in (1, 4):
    out = str(tmp_path / f'devices_{num_devices}.npz')
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={num_devices}',
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]),
               JAX_PLATFORMS='cpu')
    layouts = [f'{p}:{k}' for p, k in LAYOUTS[num_devices]]
    processes[out] = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), out, str(num_devices), *layouts],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  results = {}
  for out, process in processes.items():
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    with np.load(out) as saved:
      for name in saved.files:
        layout, key = name.split('|', 1)
        results.setdefault(layout, {})[key] = saved[name]
  return results


def _assert_same_state(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                       what: str) -> None:
  assert set(actual) == set(expected)
  assert any(key.startswith('batch_stats/') for key in expected)
  for key in expected:
    np.testing.assert_allclose(actual[key], expected[key], atol=TOLERANCE, rtol=0,
                               err_msg=f'{what}: {key}')


@pytest.fixture(scope='module')
def states(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
  """The final state of every layout: 1 and 4 devices in subprocesses, 8 here."""
  import jax  # pylint: disable=g-import-not-at-top
  assert jax.local_device_count() == 8
  results = _in_subprocesses(tmp_path_factory.mktemp('ghost_step'))
  for per_device, accumulation in LAYOUTS[8]:
    results[_layout_key(8, per_device, accumulation)] = train(per_device, accumulation)
  reference = results[_layout_key(1, 640, 1)]
  # The running statistics moved away from their initial zero mean.
  means = [v for k, v in reference.items() if k.startswith('batch_stats/') and k.endswith('/mean')]
  assert means and all(np.abs(m).max() > 0.01 for m in means)
  return results


def test_8_devices_of_80_match_1_device_of_640(states):
  _assert_same_state(states['8x80x1'], states['1x640x1'], '8 x 80 vs 1 x 640')


def test_4_devices_of_160_match_1_device_of_640(states):
  _assert_same_state(states['4x160x1'], states['1x640x1'], '4 x 160 vs 1 x 640')


@pytest.mark.parametrize('layout', ['1x640x5', '4x160x5', '8x80x5'])
def test_5_accumulated_micro_batches_of_one_ghost_match_one_batch(states, layout):
  """1 device × 5 micro-batches of 128, 4 × 5 × 32 and 8 × 5 × 16 against 1 × 640, and so
  against 8 devices × 80 without accumulation."""
  _assert_same_state(states[layout], states['1x640x1'], f'{layout} vs 1 x 640')
  _assert_same_state(states[layout], states['8x80x1'], f'{layout} vs 8 x 80')


def main(argv: list[str]) -> None:
  """``OUT.npz NUM_DEVICES PER_DEVICE:K ...``: trains each layout, saves every state."""
  out, num_devices, layouts = argv[0], int(argv[1]), argv[2:]
  import jax  # pylint: disable=g-import-not-at-top
  assert jax.local_device_count() == num_devices, jax.devices()
  arrays = {}
  for layout in layouts:
    per_device, accumulation = (int(v) for v in layout.split(':'))
    key = _layout_key(num_devices, per_device, accumulation)
    for name, value in train(per_device, accumulation).items():
      arrays[f'{key}|{name}'] = value
  np.savez(out, **arrays)


if __name__ == '__main__':
  main(sys.argv[1:])
