"""The training plan: phases, exact totals, epoch and LR at any update, and its errors."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest

from lr_study import config as schema
from lr_study.errors import ConfigError
from lr_study.schedules.batch_dynamic import next_on_plateau
from lr_study.plan import build_plan
from lr_study.plan_table import format_plan
from lr_study.schedules.noise_scale import noise_scale


def make_config(lr_schedule=None, batch_schedule=None, num_epochs=4, optimizer=None,
                max_per_device_batch=0, ghost_batch_size=0) -> ml_collections.ConfigDict:
  config = schema.get_config()
  config.lr_schedule = lr_schedule or dict(name='constant', init_value=0.1)
  config.batch_schedule = batch_schedule or dict(name='constant', batch_size=100)
  config.num_epochs = num_epochs
  config.optimizer = optimizer or dict(name='momentum', momentum=0.9)
  config.max_per_device_batch = max_per_device_batch
  config.ghost_batch_size = ghost_batch_size
  return config


# N = 1050, 6 epochs. LR 0.1, halved at epochs 2 and 4; B = 100, doubled at epoch 3.
#   phase  epochs  B    LR     updates/epoch     updates  first update
#   0      0-2     100  0.1    ⌊1050/100⌋ = 10   20       0
#   1      2-3     100  0.05   10                10       20
#   2      3-4     200  0.05   ⌊1050/200⌋ = 5    5        30
#   3      4-6     200  0.025  5                 10       35
# total 45 updates; examples 30·100 + 15·200 = 6000 (50 of each epoch's 1050 dropped).
N_SMALL = 1050
SMALL = dict(lr_schedule=dict(name='multistep', init_value=0.1, boundaries=(2, 4), factors=0.5),
             batch_schedule=dict(name='multistep', batch_size=100, boundaries=(3,), factor=2),
             num_epochs=6)


def small_plan(num_devices=1, **overrides):
  return build_plan(make_config(**(SMALL | overrides)), num_devices, N_SMALL)


def test_small_plan_has_the_hand_computed_phases_and_totals():
  plan = small_plan()
  rows = [(p.start_epoch, p.end_epoch, p.batch_size, p.learning_rate, p.updates_per_epoch,
           p.updates, p.first_update, p.dropped_per_epoch) for p in plan.phases]
  assert rows == [(0, 2, 100, pytest.approx(0.1), 10, 20, 0, 50),
                  (2, 3, 100, pytest.approx(0.05), 10, 10, 20, 50),
                  (3, 4, 200, pytest.approx(0.05), 5, 5, 30, 50),
                  (4, 6, 200, pytest.approx(0.025), 5, 10, 35, 50)]
  assert (plan.total_updates, plan.examples_seen) == (45, 6000)


def test_remainder_is_dropped_each_epoch():
  plan = build_plan(make_config(batch_schedule=dict(name='constant', batch_size=300),
                                num_epochs=3), 1, 1000)
  assert (plan.phases[0].updates_per_epoch, plan.total_updates, plan.examples_seen) == (3, 9, 2700)


@pytest.mark.parametrize('update, epoch, lr', [
    (19, 1 + 9 / 10, 0.1), (20, 2.0, 0.05),       # LR boundary at epoch 2
    (29, 2 + 9 / 10, 0.05), (30, 3.0, 0.05),      # batch boundary at epoch 3
    (34, 3 + 4 / 5, 0.05), (35, 4.0, 0.025),      # LR boundary at epoch 4
    (44, 5 + 4 / 5, 0.025),                       # the last update
])
def test_epoch_and_lr_just_before_and_after_each_phase_boundary(update, epoch, lr):
  plan = small_plan()
  assert plan.epoch_at_update(update) == pytest.approx(epoch, abs=1e-12)
  assert plan.lr_at_update(update) == pytest.approx(lr)


def test_epoch_at_update_reaches_num_epochs_at_the_end_and_takes_arrays():
  plan = small_plan()
  assert plan.epoch_at_update(45) == 6.0
  np.testing.assert_allclose(plan.epoch_at_update(np.array([0, 25, 40])), [0.0, 2.5, 5.0])
  with pytest.raises(ValueError, match='outside the plan'):
    plan.epoch_at_update(46)
  with pytest.raises(ValueError, match='outside the plan'):
    plan.lr_at_update(45)


def test_queries_by_epoch():
  plan = small_plan()
  assert [plan.batch_size_at_epoch(e) for e in range(6)] == [100, 100, 100, 200, 200, 200]
  assert plan.phase_index_at_epoch(3.5) == 2 and plan.phase_at_epoch(3.5).first_update == 30
  assert plan.phase_at_epoch(5).lr_multiplier == 1.0
  assert plan.phase_at_epoch(4).noise_scale == pytest.approx(0.025 * (1050 / 200 - 1) / 0.1)
  assert plan.phase_at_epoch(4).noise_scale_approx == pytest.approx(0.025 * 1050 / 20)
  # A phase's g is that of the LR at its first update (epoch 4 = update 35 for phase 3).
  assert plan.phase_at_epoch(5.5).noise_scale == pytest.approx(
      noise_scale(plan.lr_at_update(35), 200, 1050, 0.9))


def test_update_clock_lr_changes_inside_a_phase():
  plan = small_plan(lr_schedule=dict(name='multistep', init_value=0.1, boundaries=(15,),
                                     factors=0.5, clock='update'))
  assert len(plan.phases) == 2  # split at the batch change only
  assert (plan.lr_at_update(14), plan.lr_at_update(15)) == (pytest.approx(0.1),
                                                            pytest.approx(0.05))
  assert plan.phases[1].learning_rate == pytest.approx(0.05)  # its first update is 30


def test_fractional_lr_boundary_gets_a_phase_of_its_own():
  plan = small_plan(lr_schedule=dict(name='multistep', init_value=0.1, boundaries=(1.5,),
                                     factors=0.5))
  assert [(p.start_epoch, p.end_epoch) for p in plan.phases] == [(0, 1), (1, 2), (2, 3), (3, 6)]
  assert (plan.lr_at_update(14), plan.lr_at_update(15)) == (pytest.approx(0.1),
                                                            pytest.approx(0.05))


def test_hybrid_lr_multiplier_enters_the_lr_and_the_noise_scale():
  plan = small_plan(lr_schedule=dict(name='constant', init_value=0.1),
                    batch_schedule=dict(name='hybrid', batch_size=100, boundaries=(2, 4),
                                        factor=2, max_batch_size=200))
  assert [(p.batch_size, p.lr_multiplier) for p in plan.phases] == [(100, 1), (200, 1),
                                                                    (200, 0.5)]
  assert plan.phases[2].first_update == 30  # 2·10 + 2·5
  assert (plan.lr_at_update(29), plan.lr_at_update(30)) == (pytest.approx(0.1),
                                                            pytest.approx(0.05))
  assert plan.phase_at_epoch(4).noise_scale_approx == pytest.approx(
      plan.phase_at_epoch(0).noise_scale_approx / 4)


def test_big_per_device_batch_is_split_into_accumulated_micro_batches():
  plan = small_plan(num_devices=2, max_per_device_batch=50)
  # B = 100 on 2 devices: 50 each, no split; B = 200: 100 each as 2 x 50.
  assert [(p.per_device_batch, p.micro_batch_size, p.accumulation_steps)
          for p in plan.phases] == [(50, 50, 1), (50, 50, 1), (100, 50, 2), (100, 50, 2)]


def test_split_takes_the_fewest_micro_batches_under_the_limit_and_keeps_ghosts_whole():
  def splits(**overrides):
    return [(p.per_device_batch, p.micro_batch_size, p.accumulation_steps)
            for p in small_plan(**overrides).phases]
  # 30 does not divide 100 or 200: the fewest micro-batches of at most 30 are 4 x 25, 8 x 25.
  assert splits(max_per_device_batch=30) == [(100, 25, 4), (100, 25, 4), (200, 25, 8),
                                             (200, 25, 8)]
  # Ghost batches of 20: micro-batches of 25 would split them; 5 x 20 and 10 x 20 do not.
  assert small_plan(max_per_device_batch=30, ghost_batch_size=20).ghost_batch_size == 20
  assert splits(max_per_device_batch=30, ghost_batch_size=20) == [
      (100, 20, 5), (100, 20, 5), (200, 20, 10), (200, 20, 10)]


def test_with_batch_size_from_replans_the_remaining_epochs():
  plan = small_plan(batch_schedule=dict(name='increase_on_plateau', batch_size=100, factor=2,
                                        max_batch_size=400))
  assert plan.total_updates == 60
  new = plan.with_batch_size_from(3, next_on_plateau(plan.batch_schedule, 100))
  assert [p.batch_size for p in new.phases] == [100, 100, 200, 200]
  assert (new.total_updates, new.phases[2].first_update) == (45, 30)
  assert new.lr_at_update(35) == pytest.approx(0.025)


def test_with_batch_size_from_keeps_the_device_split_rules():
  plan = small_plan(batch_schedule=dict(name='increase_on_plateau', batch_size=100, factor=2,
                                        max_batch_size=400), max_per_device_batch=30,
                    ghost_batch_size=20)
  new = plan.with_batch_size_from(3, 200)
  assert (new.max_per_device_batch, new.ghost_batch_size) == (30, 20)
  assert [(p.batch_size, p.micro_batch_size, p.accumulation_steps) for p in new.phases] == [
      (100, 20, 5), (100, 20, 5), (200, 20, 10), (200, 20, 10)]


def test_to_json_holds_every_phase_and_the_totals():
  out = json.loads(json.dumps(small_plan().to_json()))
  assert {'start_epoch', 'end_epoch', 'batch_size', 'learning_rate', 'updates', 'noise_scale',
          'noise_scale_approx', 'per_device_batch', 'accumulation_steps', 'micro_batch_size',
          'first_update', 'updates_per_epoch', 'lr_multiplier'} <= set(out['phases'][0])
  assert (out['total_updates'], out['examples_seen'], out['num_train_examples'],
          out['num_epochs'], out['num_devices']) == (45, 6000, 1050, 6, 1)
  out = json.loads(json.dumps(small_plan(max_per_device_batch=30,
                                         ghost_batch_size=20).to_json()))
  assert (out['max_per_device_batch'], out['ghost_batch_size']) == (30, 20)


def test_plan_table_has_a_row_per_phase_and_a_totals_row():
  lines = format_plan(small_plan()).splitlines()
  assert lines[1].split()[:2] == ['epochs', 'batch']
  assert [line.split()[0] for line in lines[3:7]] == ['0-2', '2-3', '3-4', '4-6']
  assert lines[8].split() == ['total', '6', '45']
  assert lines[9].startswith('examples seen: 6,000')


def test_momentum_counts_only_for_heavy_ball_optimizers():
  assert small_plan().momentum == 0.9
  assert small_plan(optimizer=dict(name='adam')).momentum == 0.0


@pytest.mark.parametrize('overrides, num_devices, message', [
    (dict(batch_schedule=dict(name='multistep', batch_size=100, boundaries=(3, 2))), 1,
     r'^batch_schedule.boundaries must increase, got \(3, 2\)$'),
    (dict(batch_schedule=dict(name='constant', batch_size=2000)), 1,
     r'^batch_schedule: batch size 2000 at epoch 0 is larger than the 1050 training examples$'),
    (dict(batch_schedule=dict(name='multistep', batch_size=100, boundaries=(3,), factor=0)), 1,
     r'^batch_schedule.factor must be > 0, got 0$'),
    (dict(batch_schedule=dict(name='multistep', batch_size=100, boundaries=(3, 6))), 1,
     r'^batch_schedule.boundaries \(3, 6\) must lie inside the 6 epochs'),
    (dict(lr_schedule=dict(name='multistep', init_value=0.1, boundaries=(2, 8))), 1,
     r'^lr_schedule.boundaries \(2.0, 8.0\) must lie inside the 6 epochs'),
    (dict(), 8, r'^global batch 100 does not divide over 8 devices \(batch_schedule at epoch 0\)$'),
    (dict(batch_schedule=dict(name='constant', batch_size=4)), 8,
     r'^global batch 4 does not divide over 8 devices \(batch_schedule at epoch 0\)$'),
    # Micro-batches of at most 30 (25, 20, ...) cut ghosts of 50; 50 or 100 would not.
    (dict(max_per_device_batch=30, ghost_batch_size=50), 1,
     r'^no accumulation split keeps ghost batches of 50 whole for global batch 100 on 1 device '
     r'with max_per_device_batch 30: use a max_per_device_batch of at least 50 or a '
     r'ghost_batch_size dividing 25 \(batch_schedule at epoch 0\)$'),
    (dict(ghost_batch_size=16), 2,
     r'^no accumulation split keeps ghost batches of 16 whole for global batch 100 on 2 devices '
     r'\(50 each\) with max_per_device_batch 0: use a ghost_batch_size dividing 100 '
     r'\(batch_schedule at epoch 0\)$'),
    (dict(batch_schedule=dict(name='increase_on_plateau', batch_size=100, factor=2,
                              max_batch_size=400), max_per_device_batch=50,
          ghost_batch_size=100), 1,
     r'^no accumulation split keeps ghost batches of 100 whole for global batch 100 on 1 device '
     r'with max_per_device_batch 50: .* \(batch_schedule, reachable at run time\)$'),
    (dict(batch_schedule=dict(name='hybrid', batch_size=100, boundaries=(3,),
                              max_batch_size=2000)), 1,
     r'^batch_schedule.max_batch_size 2000 is larger than the 1050 training examples$'),
    (dict(batch_schedule=dict(name='increase_on_plateau', batch_size=100, factor=1.5,
                              max_batch_size=300)), 4,
     r'^global batch 150 does not divide over 4 devices \(batch_schedule, reachable at run time'),
])
def test_bad_inputs_are_rejected_with_one_line(overrides, num_devices, message):
  with pytest.raises(ConfigError, match=message):
    small_plan(num_devices=num_devices, **overrides)
