"""How a batch is split over processes, devices, micro-batches and ghost batches, and an
evaluation batch over the devices: exact splits, or one-line errors naming the numbers."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from lr_study import batching
from lr_study import config as schema
from lr_study.batching import DeviceSplit, EvalLayout, GhostLayout
from lr_study.errors import ConfigError
from lr_study.study import resolve_variant
from lr_study.training.setup import prepare_run


def test_the_module_docstring_examples_run():
  failures, tries = doctest.testmod(batching)
  assert tries > 0 and failures == 0


def test_a_division_that_is_not_whole_is_a_config_error_naming_both_numbers():
  assert batching.divide_exactly(96, 8, 'global batch') == 12
  with pytest.raises(ConfigError, match=r'^global batch 100 does not divide over 3 processes$'):
    batching.divide_exactly(100, 3, 'global batch', 'processes')


def test_each_global_micro_batch_is_a_consecutive_slice_of_the_batch():
  k, num_devices, m = 3, 4, 5
  j, d, r = np.meshgrid(np.arange(k), np.arange(num_devices), np.arange(m), indexing='ij')
  positions = batching.position_in_batch(j, d, r, m, num_devices)
  for micro in range(k):
    np.testing.assert_array_equal(np.sort(positions[micro], axis=None),
                                  np.arange(micro * num_devices * m, (micro + 1) * num_devices * m))
  np.testing.assert_array_equal(positions[1, 2], 1 * 20 + 2 * 5 + np.arange(m))


def test_a_micro_batch_is_the_per_device_batch_over_the_accumulation_steps():
  assert batching.micro_batch_size(2000, 5) == 400
  with pytest.raises(ConfigError, match=r'^per-device batch 2000 does not divide over 3 '
                                        r'micro-batches$'):
    batching.micro_batch_size(2000, 3)


@pytest.mark.parametrize('args, layout, local', [
    ((640, 8, 16), GhostLayout(640, 8, 16), True),
    ((640, 8, 128), GhostLayout(640, 8, 128), False),  # 80 per device: ghosts span two
    ((128, 8, 128), GhostLayout(128, 8, 128), False),  # one ghost over all 8 devices
    ((640, 8, 0), GhostLayout(640, 8, 80), True),  # 0: each device's own examples
    ((64, 4, 128), GhostLayout(64, 4, 64), False),  # at least the micro-batch: all of it
    ((64, 1, 128), GhostLayout(64, 1, 64), True),
])
def test_ghost_layout_slices_the_global_micro_batch(args, layout, local):
  assert batching.ghost_layout(*args) == layout
  assert layout.local == local
  assert layout.num_ghosts == args[0] // layout.ghost_size


@pytest.mark.parametrize('args, message', [
    ((600, 8, 128), r'^ghost_batch_size 128 does not divide the micro-batch of 600 examples on '
                    r'8 devices \(75 each\)$'),
    ((100, 8, 4), r'^global micro-batch 100 does not divide over 8 devices$'),
    ((0, 8, 4), r'^global micro-batch must be a whole number >= 1, got 0$'),
    ((64, 0, 4), r'^num_devices must be a whole number >= 1, got 0$'),
    ((64, 8, -1), r'^ghost_batch_size must be a whole number >= 0, got -1$'),
])
def test_ghost_layout_errors_name_the_numbers(args, message):
  with pytest.raises(ConfigError, match=message):
    batching.ghost_layout(*args)


# The paper's CIFAR-10 study (experiments/cifar10_wrn.py): batches 128, 640, 3200 and
# 16000, max_per_device_batch 3200, ghost batches of 128, on 1, 2, 4 and 8 devices.
CIFAR_SPLITS = {
    1: [(128, 128, 1), (640, 640, 1), (3200, 3200, 1), (16000, 3200, 5)],
    2: [(64, 64, 1), (320, 320, 1), (1600, 1600, 1), (8000, 1600, 5)],
    4: [(32, 32, 1), (160, 160, 1), (800, 800, 1), (4000, 800, 5)],
    8: [(16, 16, 1), (80, 80, 1), (400, 400, 1), (2000, 2000, 1)],
}


@pytest.mark.parametrize('num_devices', sorted(CIFAR_SPLITS))
def test_accumulation_split_keeps_the_cifar10_study_ghost_batches_whole(num_devices):
  splits = [batching.accumulation_split(b, num_devices, 3200, 128)
            for b in (128, 640, 3200, 16000)]
  assert splits == [DeviceSplit(*s) for s in CIFAR_SPLITS[num_devices]]


@pytest.mark.parametrize('args, split', [
    ((1024, 2, 128, 0), (512, 128, 4)),  # no ghosts: only the limit
    ((16000, 4, 3200, 128), (4000, 800, 5)),  # k = 2 and 4 leave 62.5 and 31.25 ghosts
    ((64, 2, 0, 128), (32, 32, 1)),  # batch below the ghost size: one whole-batch ghost
    ((1200, 1, 500, 0), (1200, 400, 3)),  # a limit that does not divide the batch
])
def test_accumulation_split_takes_the_fewest_micro_batches_that_work(args, split):
  assert batching.accumulation_split(*args) == DeviceSplit(*split)


@pytest.mark.parametrize('args, message', [
    ((100, 8, 0, 4), r'^global batch 100 does not divide over 8 devices$'),
    ((256, 1, 64, 128), r'^no accumulation split keeps ghost batches of 128 whole for global '
                        r'batch 256 on 1 device with max_per_device_batch 64: use a '
                        r'max_per_device_batch of at least 128 or a ghost_batch_size dividing '
                        r'64$'),
    ((400, 8, 0, 128), r'^no accumulation split keeps ghost batches of 128 whole for global '
                       r'batch 400 on 8 devices \(50 each\) with max_per_device_batch 0: use '
                       r'a ghost_batch_size dividing 400$'),
])
def test_accumulation_split_errors_name_the_numbers_and_a_fix(args, message):
  with pytest.raises(ConfigError, match=message):
    batching.accumulation_split(*args)


def test_an_accumulation_split_error_ends_with_where_the_batch_came_from():
  with pytest.raises(ConfigError, match=r'^global batch 100 does not divide over 8 devices '
                                        r'\(batch_schedule at epoch 3\)$'):
    batching.accumulation_split(100, 8, 0, 0, '(batch_schedule at epoch 3)')


@pytest.mark.parametrize('args, layout', [
    ((10000, 1000, 8), EvalLayout(steps=10, num_devices=8, per_device=125)),
    ((10001, 1000, 8), EvalLayout(steps=11, num_devices=8, per_device=125)),  # last padded
    ((360, 128, 1), EvalLayout(steps=3, num_devices=1, per_device=128)),
    ((5, 1000, 4), EvalLayout(steps=1, num_devices=4, per_device=250)),
])
def test_an_eval_batch_is_split_exactly_over_the_devices(args, layout):
  assert batching.eval_layout(*args) == layout


def test_every_process_takes_the_eval_steps_of_the_largest_slice():
  # 1001 examples over 2 processes of 4 devices: slices of 501 and 500, batches of 500
  # (1000 over both processes), so both take 2 steps.
  assert batching.eval_layout(1001, 1000, 4, process_count=2) == EvalLayout(2, 4, 125)


@pytest.mark.parametrize('eval_batch_size, num_devices', [(100, 8), (1, 8), (1000, 16)])
def test_an_eval_batch_that_does_not_divide_over_the_devices_is_a_config_error(
    eval_batch_size, num_devices):
  with pytest.raises(ConfigError, match=rf'^dataset.eval_batch_size {eval_batch_size} does '
                                        rf'not divide over {num_devices} devices: use a '
                                        rf'multiple of {num_devices}$'):
    batching.eval_per_device(eval_batch_size, num_devices)


def test_a_run_whose_eval_batch_does_not_divide_over_its_devices_is_refused_before_any_data():
  config = schema.get_config()
  config.variants = {'only': {}}
  config = resolve_variant(config, 'only')
  config.dataset.eval_batch_size = 100
  assert prepare_run(config, num_devices=4).plan.num_devices == 4
  with pytest.raises(ConfigError, match=r'^dataset.eval_batch_size 100 does not divide over '
                                        r'8 devices: use a multiple of 8$'):
    prepare_run(config, num_devices=8)
