"""The paper's CIFAR-10 study config (Smith et al. 2018, §5.1 and §5.2) and its plans."""

from __future__ import annotations

import pytest

from experiments import cifar10_wrn
from lr_study.errors import ConfigError
from lr_study.schedules.noise_scale import (noise_scale, scale_batch_with_lr,
                                            scale_batch_with_momentum)
from lr_study.plan import build_plan
from lr_study.study import resolve_variant

N = 50000  # CIFAR-10 training examples
PAPER_5_2 = ('increased_initial_lr', 'increased_momentum')


def plan_of(variant: str, num_devices: int = 1):
  return build_plan(resolve_variant(cifar10_wrn.get_config(), variant), num_devices, N)


def g_at_epoch(plan, epoch: int, approximate: bool = False) -> float:
  """g at the start of ``epoch`` in float64: the epoch-clock LR schedule there times the
  phase's LR multiplier (the plan's own LR, ``plan.lr_at_update``, goes through the
  clock's float32 multiplier column: see ``test_plan_noise_scale_is_g_at_the_epoch``)."""
  assert plan.lr_schedule.clock == 'epoch'
  phase = plan.phase_at_epoch(epoch)
  lr = float(plan.lr_schedule(float(epoch))) * phase.lr_multiplier
  return noise_scale(lr, phase.batch_size, N, plan.momentum, approximate=approximate)


def first_update_of_epoch(plan, epoch: int) -> int:
  phase = plan.phase_at_epoch(epoch)
  return phase.first_update + (epoch - phase.start_epoch) * phase.updates_per_epoch


def test_docstring_opens_with_the_command_that_runs_it():
  first = cifar10_wrn.__doc__.strip().splitlines()[0]
  command = cifar10_wrn.__doc__.split('\n\n')[1].strip()
  assert 'wide ResNet' in first
  assert command == ('python launch.py --config=experiments/cifar10_wrn.py:decay '
                     '--workdir=runs/cifar10_wrn')


def test_get_config_selects_variants():
  assert cifar10_wrn.get_config().run_variants == (
      'decay', 'hybrid', 'increase', 'increased_initial_lr', 'increased_momentum')
  assert cifar10_wrn.get_config('decay').run_variants == ('decay',)
  with pytest.raises(ConfigError, match="unknown variant 'nope'"):
    cifar10_wrn.get_config('nope')


def test_shared_settings_are_the_papers():
  config = cifar10_wrn.get_config()
  assert (config.model.name, config.model.depth, config.model.width) == ('wide_resnet', 16, 4)
  assert (config.dataset.name, config.dataset.augment) == ('cifar10', True)
  assert (config.optimizer.name, config.optimizer.momentum, config.optimizer.weight_decay) == (
      'momentum', 0.9, 5e-4)
  assert (config.num_epochs, config.ghost_batch_size, config.learning_rate, config.batch_size) == (
      200, 128, 0.1, 128)


@pytest.mark.parametrize('num_devices', [1, 8])
@pytest.mark.parametrize('variant, updates', [
    ('decay', 78000), ('hybrid', 34320), ('increase', 28800),
    ('increased_initial_lr', 5820), ('increased_momentum', 1320)])
def test_plan_totals_with_drop_remainder(variant, updates, num_devices):
  assert plan_of(variant, num_devices).total_updates == updates


def test_decay_hybrid_and_increase_have_equal_noise_scale_at_every_epoch():
  """Equal under the approximate g ≈ εN/(B(1 − m)), which the paper's schedules keep.

  The exact g = ε(N/B − 1)/(1 − m) differs by its −1 term: dividing ε by 5^k scales both
  terms, ε(N/B − 1)/5^k, while multiplying B by 5^k scales only the first, ε(N/(5^k B) − 1),
  so after k steps the increasing batch has the smaller exact g, by ε(1 − 5^−k)/(1 − m).
  """
  plans = {v: plan_of(v) for v in ('decay', 'hybrid', 'increase')}
  for epoch in range(200):
    g = {v: g_at_epoch(p, epoch, approximate=True) for v, p in plans.items()}
    assert g['increase'] == pytest.approx(g['decay'], rel=1e-12), epoch
    assert g['hybrid'] == pytest.approx(g['decay'], rel=1e-12), epoch
  assert g_at_epoch(plans['increase'], 160) < g_at_epoch(plans['decay'], 160)
  assert plans['increase'].phase_at_epoch(160).noise_scale < (
      plans['decay'].phase_at_epoch(160).noise_scale)


@pytest.mark.parametrize('variant', ('decay', 'hybrid', 'increase') + PAPER_5_2)
def test_plan_noise_scale_is_g_at_the_epoch(variant):
  """The plan's g (each phase's, and that of the LR it gives each epoch's first update) is
  the float64 g of the schedule, to the float32 precision of the clock's LR multiplier."""
  plan = plan_of(variant)
  for epoch in range(200):
    lr = plan.lr_at_update(first_update_of_epoch(plan, epoch))
    g = noise_scale(lr, plan.batch_size_at_epoch(epoch), N, plan.momentum)
    assert g == pytest.approx(g_at_epoch(plan, epoch), rel=1e-6), epoch
    assert plan.phase_at_epoch(epoch).noise_scale_approx == pytest.approx(
        g_at_epoch(plan, epoch, approximate=True), rel=1e-6), epoch


@pytest.mark.parametrize('variant', PAPER_5_2)
def test_section_5_2_variants_keep_the_noise_scale_of_decay(variant):
  decay, plan = plan_of('decay'), plan_of(variant)
  assert plan.phases[0].noise_scale_approx == pytest.approx(
      decay.phases[0].noise_scale_approx, rel=1e-12)
  assert g_at_epoch(plan, 0, approximate=True) == pytest.approx(
      decay.phases[0].noise_scale_approx, rel=1e-12)
  for epoch in range(200):  # past the 16000 cap too, where the LR decays instead
    assert g_at_epoch(plan, epoch, approximate=True) == pytest.approx(
        g_at_epoch(decay, epoch, approximate=True), rel=1e-12), epoch


def test_section_5_2_initial_batches_follow_the_rules():
  config = cifar10_wrn.get_config()
  lr_variant = config.variants.increased_initial_lr
  m_variant = config.variants.increased_momentum
  b_lr = scale_batch_with_lr(128, 0.1, lr_variant.lr_schedule.init_value)
  b_m = scale_batch_with_momentum(scale_batch_with_lr(128, 0.1, m_variant.lr_schedule.init_value),
                                  0.9, m_variant.optimizer.momentum)
  assert lr_variant.batch_schedule.batch_size == pytest.approx(b_lr) == 640
  assert m_variant.batch_schedule.batch_size == pytest.approx(b_m) == 3200


@pytest.mark.parametrize('variant', ('hybrid',) + PAPER_5_2)
def test_maximum_batch_sizes_fit_in_the_training_set(variant):
  cap = resolve_variant(cifar10_wrn.get_config(), variant).batch_schedule.max_batch_size
  assert cap <= N
  assert plan_of(variant).phases[-1].batch_size == cap


@pytest.mark.parametrize('variant, boundaries', [
    # (first update of the new phase, its epoch, batch and LR), for each step
    ('decay', [(23400, 60, 128, 0.02), (46800, 120, 128, 0.004), (62400, 160, 128, 0.0008)]),
    ('hybrid', [(23400, 60, 640, 0.1), (28080, 120, 640, 0.02), (31200, 160, 640, 0.004)]),
    ('increase', [(23400, 60, 640, 0.1), (28080, 120, 3200, 0.1), (28680, 160, 16000, 0.1)]),
])
def test_epoch_and_lr_around_each_step(variant, boundaries):
  plan = plan_of(variant, num_devices=8)
  lr_before = 0.1
  for update, epoch, batch, lr in boundaries:
    per_epoch_before = plan.phase_at_epoch(epoch - 1).updates_per_epoch
    assert plan.epoch_at_update(update - 1) == pytest.approx(epoch - 1 / per_epoch_before)
    assert plan.lr_at_update(update - 1) == pytest.approx(lr_before)
    assert plan.epoch_at_update(update) == epoch
    assert plan.lr_at_update(update) == pytest.approx(lr)
    assert plan.batch_size_at_epoch(epoch) == batch
    lr_before = lr
