"""The input-pipeline benchmark runs end to end on synthetic data and writes its results.

Timings are not checked (they depend on the machine); the fields and the files are.
"""

from __future__ import annotations

import json
import re

import pytest

from benchmarks.input_pipeline import cli
from lr_study.errors import ConfigError

TIMED = ('data_side_us', 'data_side_images_us', 'train_step_us', 'dispatch_floor_us',
         'fixed_batch_step_us', 'fused_data_side_us', 'fused_train_step_us')
FIELDS = ('device_kind', 'device_count', 'jax_version', 'steps_timed', 'global_batch',
          'per_device_batch', 'data_fraction_percent', 'image_data_fraction_percent',
          'step_image_gathers', 'data_fraction_net_of_dispatch_percent',
          'gather_in_step_percent', 'fused_data_fraction_percent', 'updates_per_dispatch',
          'target_percent', 'meets_target', 'streaming', 'cpu', *TIMED)


@pytest.mark.multidevice
def test_synthetic_run_writes_every_field_to_json_and_markdown(tmp_path):
  results = cli.main(['--synthetic', '--steps', '5', '--repeats', '2', '--warmup', '1',
                                 '--updates_per_dispatch', '4', '--out_dir', str(tmp_path)])

  written = json.loads((tmp_path / 'input_pipeline.json').read_text())
  assert set(FIELDS) <= set(written)
  assert written['steps_timed'] == 10
  assert written['updates_per_dispatch'] == 4
  assert (written['device_count'], written['per_device_batch']) == (8, 16)
  for name in TIMED:
    assert set(written[name]) == {'median', 'mean', 'min', 'max', 'values'}
    assert len(written[name]['values']) == 2
  for name in ('data_fraction_percent', 'image_data_fraction_percent',
               'data_fraction_net_of_dispatch_percent', 'gather_in_step_percent',
               'fused_data_fraction_percent'):
    assert set(written[name]) == {'median', 'mean'}
  # The data side's flat rows are what the compiled step gathers: 16 rows of 784 per device.
  assert written['step_image_gathers'] == ['u8[16,1,784]']
  assert written['streaming'] is None  # synthetic data: no TFDS pipeline to stream
  assert written['meets_target'] == results['meets_target']
  table = (tmp_path / 'input_pipeline.md').read_text()
  assert '| (b) whole train step, one update per call, µs/step |' in table
  assert '| fused data fraction a_K/b_K, % |' in table
  assert written['device_kind'] in table


@pytest.mark.parametrize('flags, message', [
    pytest.param(['--batch_size', '100'], '--batch_size 100 is not divisible by 8 devices',
                 marks=pytest.mark.multidevice),
    (['--steps', '0'], '--steps must be >= 1, got 0'),
    (['--updates_per_dispatch', '0'], '--updates_per_dispatch must be >= 1, got 0'),
    (['--steps', '460'], '--warmup + --steps must be <= 468 (one epoch at batch 128), got 480'),
])
def test_bad_flags_are_one_line_config_errors_before_any_data_is_read(tmp_path, flags, message):
  missing = str(tmp_path / 'no_such_dir')  # reading data would fail with another error
  with pytest.raises(ConfigError, match=f'^{re.escape(message)}$'):
    cli.main(['--data_dir', missing, '--manual_dir', missing,
                         '--out_dir', str(tmp_path), *flags])
