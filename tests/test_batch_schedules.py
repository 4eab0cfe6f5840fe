"""Batch-size schedules B(epoch), their LR multipliers, and the registry's errors."""

from __future__ import annotations

import math

import ml_collections
import numpy as np
import pytest

from lr_study.schedules.batch import BATCH_SCHEDULES, build_batch_schedule
from lr_study.errors import ConfigError
from lr_study.schedules.noise_scale import matched_batch_size, noise_scale
from lr_study.schedules import LRSchedule
from lr_study.schedules.batch_dynamic import next_for_noise, next_on_plateau

N = 50000
STEPS = (60, 120, 160)
PAPER_LR = dict(name='multistep', init_value=0.1, boundaries=STEPS, factors=0.2)


def build(**params):
  return build_batch_schedule(ml_collections.ConfigDict(params))


def test_registry_lists_every_schedule():
  assert sorted(BATCH_SCHEDULES) == [
      'constant', 'geometric', 'geometric_ramp', 'hybrid', 'increase_on_plateau',
      'linear_ramp', 'match_noise', 'multistep', 'noise_adaptive']


def test_constant_holds_the_batch():
  s = build(name='constant', batch_size=128)
  assert [s(e) for e in (0, 100, 199)] == [128, 128, 128]
  assert s.lr_multiplier(150) == 1.0


def test_multistep_is_the_papers_increase():
  s = build(name='multistep', batch_size=128, boundaries=STEPS, factor=5)
  assert [s(e) for e in (0, 59, 60, 119, 120, 159, 160, 199)] == [
      128, 128, 640, 640, 3200, 3200, 16000, 16000]
  assert all(s.lr_multiplier(e) == 1.0 for e in range(200))
  assert s.boundaries == STEPS


def test_hybrid_is_the_papers_hybrid():
  s = build(name='hybrid', batch_size=128, boundaries=STEPS, factor=5, max_batch_size=640)
  assert [s(e) for e in (0, 60, 120, 160)] == [128, 640, 640, 640]
  assert [s.lr_multiplier(e) for e in (0, 60, 119, 120, 160)] == pytest.approx(
      [1, 1, 1, 0.2, 0.04])


def test_hybrid_with_a_cap_between_steps_takes_the_rest_as_lr_decay():
  s = build(name='hybrid', batch_size=128, boundaries=STEPS, factor=5, max_batch_size=1000)
  assert (s(120), s.lr_multiplier(120)) == (1000, pytest.approx(1000 / 3200))
  # The approximate noise scale is that of the uncapped target batch, 3200.
  assert noise_scale(0.1 * s.lr_multiplier(120), s(120), N, 0.9, approximate=True) == (
      pytest.approx(noise_scale(0.1, 3200, N, 0.9, approximate=True)))


def test_geometric_grows_rounds_to_a_multiple_and_caps():
  s = build(name='geometric', batch_size=64, growth=1.5, every=2, max_batch_size=256, multiple=8)
  assert [s(e) for e in range(8)] == [64, 64, 96, 96, 144, 144, 216, 216]
  # 64·1.5⁴ = 324 > 256: the batch holds at the cap and the LR takes 256/324.
  assert (s(8), s.lr_multiplier(8)) == (256, pytest.approx(256 / 324))


def test_match_noise_of_the_papers_step_schedule_is_the_papers_increase():
  s = build(name='match_noise', batch_size=128, reference=PAPER_LR)
  increase = build(name='multistep', batch_size=128, boundaries=STEPS, factor=5)
  assert [s(e) for e in range(200)] == [increase(e) for e in range(200)]


def cosine(init_value: float, num_epochs: int) -> LRSchedule:
  """A cosine decay to 0 over ``num_epochs`` (Loshchilov & Hutter 2017), built here."""
  return LRSchedule('cosine', lambda t: init_value * 0.5 * (1 + np.cos(np.pi * t / num_epochs)),
                    clock='epoch', stepping='continuous', init_value=init_value)


def test_match_noise_converts_a_cosine_schedule_keeping_the_noise_scale():
  """At each epoch g(ε0·k, B) equals the reference's g(ε_ref, B0), up to B's rounding."""
  ref = cosine(0.1, 100)
  s = build(name='match_noise', batch_size=128, reference=ref, max_batch_size=8000, multiple=8)
  for e in range(100):
    b, k = s(e), s.lr_multiplier(e)
    assert b % 8 == 0 and b <= 8000
    g = noise_scale(0.1 * k, b, N, 0.9, approximate=True)
    g_ref = noise_scale(float(ref(e)), 128, N, 0.9, approximate=True)
    if b < 8000:
      assert k == 1.0 and g == pytest.approx(g_ref, rel=4 / b)  # rounding to a multiple of 8
    else:
      assert g == pytest.approx(g_ref, rel=1e-12)
  assert s(0) == 128 and s(99) == 8000 and s.lr_multiplier(99) < 1


def test_match_noise_exact_keeps_the_exact_noise_scale_before_rounding():
  s = build_batch_schedule(dict(name='match_noise', batch_size=128, reference=PAPER_LR,
                                exact=True), num_examples=N)
  for e, ref_lr in ((0, 0.1), (60, 0.02), (120, 0.004), (160, 0.0008)):
    b = matched_batch_size(ref_lr, 0.1, 128, N, approximate=False)
    assert noise_scale(0.1, b, N, 0.9) == pytest.approx(noise_scale(ref_lr, 128, N, 0.9),
                                                        rel=1e-12)
    assert s(e) == math.floor(b + 0.5)


def test_match_noise_exact_without_the_training_set_size_is_rejected():
  with pytest.raises(ConfigError, match='batch_schedule.exact=True needs num_examples'):
    build(name='match_noise', batch_size=128, reference=PAPER_LR, exact=True)


def test_match_noise_rejects_an_update_clock_reference():
  with pytest.raises(ConfigError, match='reference must be a fixed epoch-clock LR schedule'):
    build(name='match_noise', batch_size=128, reference=dict(PAPER_LR, clock='update'))


def test_match_noise_unbounded_batch_needs_a_cap():
  s = build(name='match_noise', batch_size=128, reference=cosine(0.1, 10))
  with pytest.raises(ConfigError, match='max_batch_size is needed'):
    s(10)  # ε_ref(10) = 0: B0·ε0/ε_ref is unbounded


def test_increase_on_plateau_starts_at_the_batch_and_steps_to_the_cap():
  s = build(name='increase_on_plateau', batch_size=128, factor=5, max_batch_size=10000,
            patience=3, metric='validation_loss')
  assert s.dynamic == 'increase_on_plateau'
  assert [s(e) for e in (0, 199)] == [128, 128]
  assert next_on_plateau(s, 128) == 640 and next_on_plateau(s, 3200) == 10000
  assert s.reachable == (128, 640, 3200, 10000)
  assert s.params['patience'] == 3
  assert s.params['factor'] == 5 and s.params['metric'] == 'validation_loss'


def test_increase_on_plateau_validates_the_detector_parameters():
  with pytest.raises(ConfigError,
                     match=r'^batch_schedule\.patience must be a whole number >= 0, got -1$'):
    build(name='increase_on_plateau', batch_size=128, max_batch_size=640, patience=-1)


@pytest.mark.parametrize('params, message', [
    (dict(name='multistep', batch_size=128, boundaries=(60, 30)),
     r'^batch_schedule.boundaries must increase, got \(60, 30\)$'),
    (dict(name='multistep', batch_size=128, boundaries=(60, 60)),
     r'^batch_schedule.boundaries must increase, got \(60, 60\)$'),
    (dict(name='multistep', batch_size=128, boundaries=(60.5,)),
     r'^batch_schedule.boundaries must be a sequence of whole numbers >= 1, got \(60.5,\)$'),
    (dict(name='multistep', batch_size=128, boundaries=(60,), factor=0),
     r'^batch_schedule.factor must be > 0, got 0$'),
    (dict(name='hybrid', batch_size=128, boundaries=(60,), factor=-5, max_batch_size=640),
     r'^batch_schedule.factor must be > 0, got -5$'),
    (dict(name='geometric', batch_size=128, growth=0),
     r'^batch_schedule.growth must be > 0, got 0$'),
    (dict(name='increase_on_plateau', batch_size=128, max_batch_size=640, factor=0),
     r'^batch_schedule.factor must be > 0, got 0$'),
    (dict(name='constant', batch_size=0),
     r'^batch_schedule.batch_size must be a whole number >= 1, got 0$'),
    (dict(name='hybrid', batch_size=128, boundaries=(60,), max_batch_size=64),
     r'^batch_schedule.max_batch_size must be >= batch_size 128, got 64$'),
    (dict(name='nope', batch_size=128), r"^batch_schedule.name: unknown batch schedule 'nope'"),
    (dict(name='constant', batch_size=128, factor=2),
     r"^batch_schedule\.factor: unknown parameter of batch schedule 'constant' "
     r"\(known: batch_size\)$"),
])
def test_bad_parameters_are_rejected_with_one_line(params, message):
  with pytest.raises(ConfigError, match=message):
    build(**params)


def test_noise_adaptive_follows_the_measured_noise_scale_in_multiples_and_never_shrinks():
  s = build_batch_schedule(dict(name='noise_adaptive', batch_size=64, max_batch_size=1024,
                                scale=0.5), num_examples=60000)
  assert s.reachable == tuple(range(64, 1025, 64)) and s.dynamic == 'noise_adaptive'
  assert next_for_noise(s, 64, 700.0) == 320  # 64·⌊0.5·700/64⌋
  assert next_for_noise(s, 320, 300.0) == 320  # never shrinks
  assert next_for_noise(s, 320, 1e6) == 1024  # capped
  assert next_for_noise(s, 320, float('nan')) == 320


def test_noise_adaptive_batch_must_be_a_multiple():
  with pytest.raises(ConfigError, match=r'^batch_schedule.batch_size must be a multiple of multiple=48, got 64$'):
    build_batch_schedule(dict(name='noise_adaptive', batch_size=64, max_batch_size=960,
                              multiple=48), num_examples=60000)
