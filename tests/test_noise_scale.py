"""The noise scale g = ε(N/B − 1)/(1 − m) and the §5.2 rules (Smith et al. 2018)."""

from __future__ import annotations

import numpy as np
import pytest

from lr_study.schedules import noise_scale as ns
from lr_study.errors import ConfigError

N = 50000


def test_noise_scale_exact_and_approximate_values():
  # The paper's CIFAR-10 start: ε = 0.1, B = 128, m = 0.9.
  assert ns.noise_scale(0.1, 128, N, 0.9) == pytest.approx(0.1 * (N / 128 - 1) / 0.1)
  assert ns.noise_scale(0.1, 128, N, 0.9, approximate=True) == pytest.approx(390.625)
  assert ns.noise_scale(0.1, 128, N) == pytest.approx(0.1 * (N / 128 - 1))


def test_noise_scale_broadcasts_over_arrays():
  g = ns.noise_scale(0.1, np.array([128, 640]), N, 0.9, approximate=True)
  np.testing.assert_allclose(g, [390.625, 78.125])


@pytest.mark.parametrize('kwargs, message', [
    (dict(batch_size=0), 'batch_size must be > 0, got 0'),
    (dict(momentum=1.0), r'momentum must be in \[0, 1\), got 1.0'),
    (dict(num_examples=0), 'num_examples must be > 0, got 0'),
    (dict(learning_rate=-0.1), 'learning_rate must be >= 0, got -0.1'),
])
def test_noise_scale_rejects_bad_inputs(kwargs, message):
  args = dict(learning_rate=0.1, batch_size=128, num_examples=N, momentum=0.9) | kwargs
  with pytest.raises(ConfigError, match=message):
    ns.noise_scale(**args)


def test_scale_batch_with_lr_gives_the_increased_initial_lr_batch():
  assert ns.scale_batch_with_lr(128, 0.1, 0.5) == pytest.approx(640)


def test_scale_batch_with_momentum_gives_the_increased_momentum_batch():
  b = ns.scale_batch_with_momentum(ns.scale_batch_with_lr(128, 0.1, 0.5), 0.9, 0.98)
  assert b == pytest.approx(3200)


def test_section_5_2_rules_keep_the_approximate_noise_scale():
  g = ns.noise_scale(0.1, 128, N, 0.9, approximate=True)
  b_lr = ns.scale_batch_with_lr(128, 0.1, 0.5)
  b_m = ns.scale_batch_with_momentum(b_lr, 0.9, 0.98)
  assert ns.noise_scale(0.5, b_lr, N, 0.9, approximate=True) == pytest.approx(g)
  assert ns.noise_scale(0.5, b_m, N, 0.98, approximate=True) == pytest.approx(g)


def test_matched_batch_size_approximate_is_the_inverse_lr_ratio():
  assert ns.matched_batch_size(0.02, 0.1, 128) == pytest.approx(640)
  assert ns.matched_batch_size(0.0, 0.1, 128) == np.inf


def test_matched_batch_size_exact_keeps_the_exact_noise_scale():
  ref_lrs = np.array([0.1, 0.05, 0.013, 0.0007])
  b = ns.matched_batch_size(ref_lrs, 0.1, 128, N, approximate=False)
  np.testing.assert_allclose(ns.noise_scale(0.1, b, N, 0.9), ns.noise_scale(ref_lrs, 128, N, 0.9),
                             rtol=1e-12)
  assert ns.matched_batch_size(0.0, 0.1, 128, N, approximate=False) == pytest.approx(N)


def test_capped_lr_multiplier_makes_up_the_noise_scale():
  for approximate in (True, False):
    k = ns.capped_lr_multiplier(3200, 640, N, approximate=approximate)
    assert ns.noise_scale(0.1 * k, 640, N, 0.9, approximate) == pytest.approx(
        ns.noise_scale(0.1, 3200, N, 0.9, approximate))
  assert ns.capped_lr_multiplier(3200, 640) == pytest.approx(0.2)


def test_exact_conversion_needs_num_examples():
  with pytest.raises(ConfigError, match='exact=True needs num_examples'):
    ns.matched_batch_size(0.05, 0.1, 128, approximate=False)
