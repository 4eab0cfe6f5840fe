"""The LR range test's bound rule, on synthetic loss curves with a known answer, and its CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from analysis import lr_range_test
from analysis.lr_range_test import suggest_clr_bounds
from lr_study.errors import ConfigError

LRS = np.logspace(-5, 0, 501)
X = np.log10(LRS)
# Flat at 2 up to 1e-4, falls by 0.75 per decade to 0.5 at 1e-2, rises symmetrically, and
# diverges past 1e-1. The loss has fallen by 10% of its fall (to 1.85) at 10^-3.8.
LOSS = np.where(X <= -1, np.minimum(2.0, 0.5 + 0.75 * np.abs(X + 2)), 1.25 * np.exp(10 * (X + 1)))
BASE, MAX = 10**-3.8, 1e-2


def log10_bounds(lrs, losses, **kwargs):
  return np.log10(suggest_clr_bounds(lrs, losses, **kwargs))


def test_bounds_of_a_clean_curve_are_the_onset_and_the_minimum():
  np.testing.assert_allclose(log10_bounds(LRS, LOSS), np.log10([BASE, MAX]), atol=0.011)


def test_bounds_survive_batch_noise():
  noisy = LOSS + np.random.default_rng(0).normal(0.0, 0.05, LOSS.shape)
  np.testing.assert_allclose(log10_bounds(LRS, noisy), np.log10([BASE, MAX]), atol=0.1)


def test_points_after_divergence_are_ignored():
  loss = LOSS.copy()
  loss[X > -0.5] = 0.1  # a "recovery" after the run diverged must not become max_lr
  loss[-10:] = np.nan
  np.testing.assert_allclose(log10_bounds(LRS, loss), np.log10([BASE, MAX]), atol=0.011)


def test_points_are_sorted_by_learning_rate():
  order = np.random.default_rng(1).permutation(len(LRS))
  assert suggest_clr_bounds(LRS[order], LOSS[order]) == suggest_clr_bounds(LRS, LOSS)


def test_drop_fraction_moves_base_lr_towards_max_lr():
  # unsmoothed, the loss reaches 2 − 0.5·1.5 = 1.25 at 10^-3.
  np.testing.assert_allclose(log10_bounds(LRS, LOSS, window=1, drop_fraction=0.5), [-3.0, -2.0],
                             atol=1e-9)


def test_a_loss_that_never_falls_is_an_error():
  with pytest.raises(ValueError, match='never falls'):
    suggest_clr_bounds(LRS, 1.0 + LRS)


def write_log(run_dir, lrs, losses):
  with open(os.path.join(run_dir, 'train_log.jsonl'), 'w') as f:
    for update, (lr, loss) in enumerate(zip(lrs, losses)):
      f.write(json.dumps({'update': update, 'epoch': update / 100, 'learning_rate': lr,
                          'train_loss': loss, 'train_accuracy': 1.0 / (1.0 + loss)}) + '\n')


def test_cli_writes_the_figure_and_prints_the_bounds(tmp_path, capsys):
  write_log(tmp_path, LRS[::2], LOSS[::2])
  base_lr, max_lr = lr_range_test.main(['--workdir', str(tmp_path)])
  assert os.path.getsize(tmp_path / 'lr_range_test.png') > 0
  np.testing.assert_allclose(np.log10([base_lr, max_lr]), np.log10([BASE, MAX]), atol=0.021)
  assert f'base_lr={base_lr:.4g} max_lr={max_lr:.4g}' in capsys.readouterr().out


def test_cli_without_a_train_log_names_the_workdir(tmp_path):
  with pytest.raises(ConfigError, match=r"--workdir '.*' has no train_log.jsonl"):
    lr_range_test.main(['--workdir', str(tmp_path)])
