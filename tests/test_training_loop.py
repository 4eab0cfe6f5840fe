"""Real training runs on the embedded digits, on one CPU device (8 where the steps in
flight are bounded): the loop keeps the plan's books exactly, dynamic schedules act between
updates, and a resume is exact."""

from __future__ import annotations

import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from conftest import CONFIG, assert_strict_json, digits_run_config, succeeded
from lr_study.data.feeds import load_feed
from lr_study.runtime import run_files
from lr_study.runtime.preemption import Preempted
from lr_study.training import checkpoint, manual_lr
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import prepare_run
from lr_study.training.step import StepCompiler, init_train_state

pytestmark = pytest.mark.slow  # every test trains


def _config(data_dir: str, **overrides) -> ml_collections.ConfigDict:
  return digits_run_config(data_dir, **overrides)


def _run(config: ml_collections.ConfigDict, run_dir: str):
  setup = prepare_run(config)
  feed = load_feed(config.dataset, setup.spec)
  compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule, augment=False)
  summary = train_and_evaluate(setup, feed, run_dir, 0, compiler)
  return setup, summary, run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))


def _rewind(run_dir: str, epochs: int, updates_per_epoch: int) -> None:
  """Deletes the checkpoints after ``epochs`` epochs: the run as if killed just after
  that checkpoint."""
  for step in os.listdir(os.path.join(run_dir, 'checkpoints')):
    if int(step) > epochs * updates_per_epoch:
      shutil.rmtree(os.path.join(run_dir, 'checkpoints', step))


def _events(run_dir: str) -> list[dict]:
  return run_files.read_jsonl(os.path.join(run_dir, run_files.EVENTS))


@pytest.fixture(scope='module')
def default_run(digits_data_dir, tmp_path_factory):
  """``_config``'s run as it is (4 phases, 3 shapes): (setup, summary, metrics log)."""
  return _run(_config(digits_data_dir), str(tmp_path_factory.mktemp('default_run')))


def test_compile_count_equals_distinct_per_device_shapes_in_the_plan(default_run):
  setup, summary, _ = default_run
  shapes = {(p.per_device_batch, p.accumulation_steps) for p in setup.plan.phases}
  assert len(setup.plan.phases) == 4 and len(shapes) == 3  # the LR step at epoch 3 is data
  assert summary['compiles'] == len(shapes)


def test_log_matches_the_plan_in_updates_examples_batch_size_and_learning_rate(default_run):
  setup, summary, log = default_run
  plan = setup.plan
  assert [r['epoch'] for r in log] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
  updates = examples = 0
  for record in log:
    epoch = int(record['epoch']) - 1
    phase = plan.phase_at_epoch(epoch)
    updates += phase.updates_per_epoch
    examples += phase.updates_per_epoch * phase.batch_size
    assert record['update'] == updates
    assert record['examples_seen'] == examples
    assert record['batch_size'] == plan.batch_size_at_epoch(epoch)
    assert record['learning_rate'] == pytest.approx(plan.lr_at_update(updates - 1), rel=1e-6)
  assert summary['updates'] == plan.total_updates == updates
  assert summary['examples_seen'] == plan.examples_seen == examples


def test_log_records_every_field_the_figures_need(digits_data_dir, tmp_path):
  _, _, log = _run(_config(digits_data_dir, num_epochs=2,
                           lr_schedule=dict(name='constant', init_value=0.05),
                           batch_schedule=dict(name='constant', batch_size=64)), str(tmp_path))
  fields = {'update', 'epoch', 'examples_seen', 'learning_rate', 'batch_size', 'noise_scale',
            'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'wall_time'}
  assert fields <= set(log[0])
  assert log[-1]['test_examples'] == 360
  metadata = run_files.read_json(os.path.join(tmp_path, run_files.METADATA))
  assert {'config', 'plan', 'devices', 'packages', 'git'} <= set(metadata)
  assert metadata['devices']['local_device_count'] == jax.local_device_count()


def test_reduce_on_plateau_cuts_the_learning_rate_in_a_real_run(digits_data_dir, tmp_path):
  # threshold 10 in abs mode: no evaluation can improve on the first, so after
  # patience + 1 = 2 bad evaluations the LR is cut, then again after the cooldown.
  schedule = dict(name='reduce_on_plateau', init_value=0.05, factor=0.5, patience=1,
                  mode='min', threshold=10.0, threshold_mode='abs', cooldown=0, min_lr=0.0,
                  metric='test_loss')
  _, _, log = _run(_config(digits_data_dir, lr_schedule=schedule,
                           batch_schedule=dict(name='constant', batch_size=64)), str(tmp_path))
  lrs = [r['learning_rate'] for r in log]
  np.testing.assert_allclose(lrs, [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125], rtol=1e-6)
  events = _events(str(tmp_path))
  assert [(e['reason'], e['update']) for e in events] == [
      ('reduce_on_plateau', log[2]['update']), ('reduce_on_plateau', log[4]['update'])]


def test_manual_learning_rate_change_of_a_stopped_run_takes_effect_on_resume(
    digits_data_dir, tmp_path):
  constant = dict(name='manual', init_value=0.05)
  batch = dict(name='constant', batch_size=64)
  _run(_config(digits_data_dir, num_epochs=4, lr_schedule=constant, batch_schedule=batch),
       str(tmp_path))
  _rewind(str(tmp_path), 2, 1437 // 64)
  manual_lr.request(str(tmp_path), 0.01)
  _, _, log = _run(_config(digits_data_dir, num_epochs=4, lr_schedule=constant,
                           batch_schedule=batch), str(tmp_path))
  assert [r['learning_rate'] for r in log] == pytest.approx([0.05, 0.05, 0.01, 0.01], rel=1e-6)
  (event,) = _events(str(tmp_path))
  assert event['reason'] == 'manual' and event['update'] == log[1]['update']
  assert event['old_learning_rate'] == pytest.approx(0.05) and event['learning_rate'] == 0.01
  assert not os.path.exists(os.path.join(tmp_path, manual_lr.REQUEST))


def test_resumed_run_continues_exactly_where_an_uninterrupted_run_would_be(
    digits_data_dir, tmp_path):
  kwargs = dict(lr_schedule=dict(name='constant', init_value=0.05),
                batch_schedule=dict(name='constant', batch_size=64))
  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  _, _, log_straight = _run(_config(digits_data_dir, num_epochs=4, **kwargs), straight)
  shutil.copytree(straight, resumed)  # the same run, then as if killed after epoch 2
  _rewind(resumed, 2, 1437 // 64)
  setup, _, log_resumed = _run(_config(digits_data_dir, num_epochs=4, **kwargs), resumed)
  drop = ('wall_time',)
  assert ([{k: v for k, v in r.items() if k not in drop} for r in log_resumed] ==
          [{k: v for k, v in r.items() if k not in drop} for r in log_straight])
  template = init_train_state(setup.model, setup.tx, 0, setup.spec.image_shape)
  a, b = (checkpoint.restore(d, template).state for d in (straight, resumed))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_a_run_stopped_at_the_last_update_of_an_epoch_resumes_without_repeating_it(
    digits_data_dir, tmp_path, stop_after):
  # 22 updates per epoch in dispatches of 8, 8 and 6: the third ends epoch 0.
  kwargs = dict(num_epochs=3, updates_per_dispatch=8,
                lr_schedule=dict(name='constant', init_value=0.05),
                batch_schedule=dict(name='constant', batch_size=64))
  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  _, _, log_straight = _run(_config(digits_data_dir, **kwargs), straight)
  setup = prepare_run(_config(digits_data_dir, **kwargs))
  compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule, augment=False)
  with pytest.raises(Preempted, match='after update 22,'):
    train_and_evaluate(setup, load_feed(setup.config.dataset, setup.spec), resumed, 0, compiler,
                       preemption=stop_after(3))
  _, summary, log_resumed = _run(_config(digits_data_dir, **kwargs), resumed)
  assert summary['updates'] == 66
  assert ([{k: v for k, v in r.items() if k != 'wall_time'} for r in log_resumed] ==
          [{k: v for k, v in r.items() if k != 'wall_time'} for r in log_straight])


def test_increase_on_plateau_raises_the_batch_in_a_real_run(digits_data_dir, tmp_path):
  batch = dict(name='increase_on_plateau', batch_size=32, max_batch_size=128, factor=2,
               metric='test_loss', mode='min', patience=0, threshold=10.0,
               threshold_mode='abs', cooldown=0)
  _, summary, log = _run(_config(digits_data_dir, num_epochs=4, batch_schedule=batch,
                                 lr_schedule=dict(name='constant', init_value=0.05)),
                         str(tmp_path))
  # The first evaluation sets the best value; each later one is a plateau (patience 0).
  assert [r['batch_size'] for r in log] == [32, 32, 64, 128]
  assert summary['updates'] == 2 * (1437 // 32) + 1437 // 64 + 1437 // 128
  plan = run_files.read_json(os.path.join(tmp_path, run_files.PLAN))
  assert plan['total_updates'] == summary['updates']
  assert [e['batch_size'] for e in _events(str(tmp_path))] == [64, 128]


def test_streaming_mode_trains_the_same_plan_from_tf_data(digits_data_dir, tmp_path):
  config = _config(digits_data_dir, num_epochs=4,
                   batch_schedule=dict(name='multistep', batch_size=64, boundaries=(2,), factor=2))
  config.dataset.mode = 'streaming'
  setup, summary, log = _run(config, str(tmp_path))
  assert summary['updates'] == setup.plan.total_updates == 2 * (1437 // 64) + 2 * (1437 // 128)
  assert [r['batch_size'] for r in log] == [64, 64, 128, 128]
  assert all(r['test_examples'] == 360 for r in log)
  assert log[-1]['test_accuracy'] > 0.8


def test_a_fresh_run_in_an_old_directory_starts_its_logs_afresh(digits_data_dir, tmp_path):
  config = _config(digits_data_dir, num_epochs=2, checkpoint_every_epochs=0,
                   lr_schedule=dict(name='constant', init_value=0.05),
                   batch_schedule=dict(name='constant', batch_size=64))
  _run(config, str(tmp_path))
  _, _, log = _run(config, str(tmp_path))
  assert [r['epoch'] for r in log] == [1.0, 2.0]


@pytest.mark.multidevice
def test_long_epochs_on_eight_cpu_devices_do_not_deadlock(digits_data_dir, tmp_path):
  """XLA:CPU hangs in the all-reduce when ~50+ pmapped steps are queued on fake devices;
  the loop bounds the steps in flight there (179 updates in this one epoch)."""
  assert jax.local_device_count() == 8
  config = _config(digits_data_dir, num_epochs=1, lr_schedule=dict(name='constant', init_value=0.05),
                   batch_schedule=dict(name='constant', batch_size=8))
  _, summary, _ = _run(config, str(tmp_path))
  assert summary['updates'] == 1437 // 8


def test_manual_learning_rate_request_rescales_a_decaying_schedule_from_its_update(
    digits_data_dir, tmp_path):
  batch = dict(name='constant', batch_size=64)
  _run(_config(digits_data_dir, num_epochs=4, batch_schedule=batch), str(tmp_path))
  _rewind(str(tmp_path), 1, 1437 // 64)
  manual_lr.request(str(tmp_path), 0.01)  # read when the run resumes, before update 22
  _, _, log = _run(_config(digits_data_dir, num_epochs=4, batch_schedule=batch), str(tmp_path))
  # multistep 0.05 ÷ 5 at epoch 3: the request sets 0.01 now and the later step still acts.
  assert [r['learning_rate'] for r in log] == pytest.approx([0.05, 0.01, 0.01, 0.002], rel=1e-6)
  (event,) = _events(str(tmp_path))
  assert (event['update'], event['old_learning_rate']) == (1437 // 64, pytest.approx(0.05))


def test_noise_adaptive_batch_follows_the_measured_noise_scale_in_a_real_run(digits_data_dir, tmp_path):
  batch = dict(name='noise_adaptive', batch_size=16, max_batch_size=256, multiple=16)
  setup, summary, log = _run(_config(digits_data_dir, num_epochs=4, batch_schedule=batch,
                                     lr_schedule=dict(name='constant', init_value=0.05),
                                     gradient_noise_every_epochs=1),
                             str(tmp_path))
  sizes = [r['batch_size'] for r in log]
  assert sizes[0] == 16 and sizes == sorted(sizes) and sizes[-1] > 16
  for before, after in zip(log, log[1:]):  # each change follows the previous evaluation
    expected = min(256, max(before['batch_size'], 16 * int(before['gradient_noise_scale'] // 16)))
    assert after['batch_size'] == expected
  plan = run_files.read_json(os.path.join(tmp_path, run_files.PLAN))
  assert plan['total_updates'] == summary['updates'] == sum(1437 // b for b in sizes)
  assert all(r['gradient_noise_scale'] > 0 for r in log)


# --- launch.py: a diverging study ---------------------------------------------------------------


def test_a_diverging_study_marks_each_run_at_its_first_non_finite_update(launcher, tmp_path):
  workdir = str(tmp_path / 'workdir')
  result = succeeded(launcher.run(launcher.args(
      workdir, '--config.learning_rate=1e6', config=CONFIG, log_every=1)))
  table = {row.split('|')[1].strip(): row for row in result.stdout.splitlines()
           if row.startswith('| ') and 'schedule' not in row}
  assert list(table) == ['decay', 'hybrid', 'increase']
  for variant in table:
    run_dir = os.path.join(workdir, variant, 'seed_0')
    summary = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY))
    log = run_files.read_jsonl(os.path.join(run_dir, run_files.TRAIN_LOG))
    # With a train-log line per update, its train_loss is that update's loss.
    assert [r['update'] for r in log] == list(range(1, len(log) + 1))
    first = next(r['update'] for r in log if r['train_loss'] is None)
    assert 'train_loss' in log[first - 1]['non_finite']  # the null is named
    assert all(np.isfinite(r['train_loss']) for r in log[:first - 1])
    assert summary['status'] == 'diverged'
    assert summary['diverged_at_update'] == first, (variant, summary, log[:first + 1])
    assert summary['final_test_accuracy'] is None
    assert f'diverged at update {first}' in table[variant], table[variant]
  assert assert_strict_json(workdir) >= 3 * 6
