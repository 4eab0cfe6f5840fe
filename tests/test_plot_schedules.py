"""`python -m analysis.plot_schedules` writes the lectures' figures and the gallery."""

from __future__ import annotations

import os

import pytest

from analysis import plot_schedules


@pytest.mark.slow  # every figure of the gallery
def test_cli_writes_every_figure(tmp_path):
  out_dir = tmp_path / 'schedules'
  paths = plot_schedules.main(['--out_dir', str(out_dir)])
  names = {'exponential_decay.png', 'ng_decay.png', 'step_decay.png', 'cyclical.png',
           'gallery.png'}
  assert {os.path.basename(p) for p in paths} == names
  for name in names:
    with open(out_dir / name, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
