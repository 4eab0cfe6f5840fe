"""benchmarks.wrn_speed: the peak table by device kind, and one tiny run that writes its
images/s, XLA's FLOPs per image and the Markdown table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import wrn_speed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('kind, dtype, peak', [
    ('NVIDIA H100 80GB HBM3', 'bfloat16', 989.4),
    ('NVIDIA H100 PCIe', 'bfloat16', 756.0),
    ('NVIDIA H200', 'float32', 494.7),
    ('NVIDIA A100-SXM4-40GB', 'bfloat16', 312.0),
    ('TPU v5 lite', 'bfloat16', 197.0),
    ('Tesla T4', 'bfloat16', None),
    ('cpu', 'float32', None),
])
def test_peak_is_looked_up_by_device_kind_and_dtype(kind, dtype, peak):
  assert wrn_speed.peak_tflops(kind, dtype) == peak


@pytest.mark.slow
def test_a_tiny_run_writes_images_per_second_flops_and_the_table(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one CPU device
  result = subprocess.run(
      [sys.executable, '-m', 'benchmarks.wrn_speed', '--depth=10', '--width=1',
       '--batch_sizes=8', '--dtypes=bfloat16', '--updates=1', '--rounds=1',
       f'--out_dir={tmp_path}'], cwd=ROOT, env=env, capture_output=True, text=True,
      timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / 'wrn_speed.json') as f:
    record = json.load(f)
  (row,) = record['results']
  assert (row['batch_size'], row['dtype'], row['diverged_at']) == (8, 'bfloat16', 0)
  assert row['images_per_s'] > 0 and row['mfu'] is None  # no peak for a CPU
  # WRN-10-1 on 32×32×3: about 24 MFLOP forward per image, 3 times that with the backward.
  assert 4e7 < row['flops_per_image'] < 1.5e8
  assert '| 8 | bfloat16 |' in (tmp_path / 'wrn_speed.md').read_text()
