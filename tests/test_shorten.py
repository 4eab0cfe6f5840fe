"""``config.epochs_scale``: a study in a fraction of its epochs, every epoch boundary moved
(lr_study.shorten), from Python and from launch.py."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from lr_study import experiment, shorten
from lr_study.errors import ConfigError
from lr_study.plan import build_plan
from lr_study.runtime import fingerprint
from lr_study.schedules.base import SCHEDULES
from lr_study.schedules.batch import BATCH_SCHEDULES
from lr_study.study import resolve_variant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, 'experiments', 'mnist_decay_vs_batch.py')


def _load(config_arg: str, *overrides: str) -> ml_collections.ConfigDict:
  return experiment.load(config_arg, overrides, root=ROOT)


def _plan(config: ml_collections.ConfigDict, variant: str, n: int):
  return build_plan(resolve_variant(config, variant), num_devices=1, num_train_examples=n)


def test_mnist_study_in_a_tenth_of_its_epochs_steps_at_epochs_1_and_2():
  config = _load('experiments/mnist_decay_vs_batch.py', '--config.epochs_scale=0.1')
  moved = {m.path: (m.old, m.new) for m in shorten.moves(config, 0.1)}
  assert moved['num_epochs'] == (30, 3)
  assert moved['variants.decay.lr_schedule.boundaries'] == ((10, 20), (1, 2))
  assert moved['variants.hybrid.batch_schedule.boundaries'] == ((10, 20), (1, 2))
  assert moved['variants.increase.batch_schedule.boundaries'] == ((10, 20), (1, 2))
  for variant, batches in (('decay', [64] * 3), ('hybrid', [64, 256, 256]),
                           ('increase', [64, 256, 1024])):
    plan = _plan(config, variant, 54000)
    assert plan.num_epochs == 3
    assert [(p.start_epoch, p.end_epoch) for p in plan.phases] == [(0, 1), (1, 2), (2, 3)]
    assert [p.batch_size for p in plan.phases] == batches
  assert shorten.describe(config) == (
      'epochs_scale 0.1: 30 epochs -> 3; lr_schedule.boundaries (10, 20) -> (1, 2) (decay); '
      'batch_schedule.boundaries (10, 20) -> (1, 2) (hybrid, increase)')


def test_cifar10_study_in_20_epochs_steps_at_6_12_16():
  config = _load('experiments/cifar10_wrn.py', '--config.epochs_scale=0.1')
  for variant in config.run_variants:
    plan = _plan(config, variant, 50000)
    starts = sorted({p.start_epoch for p in plan.phases} | {plan.num_epochs})
    assert plan.num_epochs == 20 and {6, 12, 16} <= set(starts), variant


@pytest.mark.parametrize('scale, message', [
    (0.05, 'epochs_scale 0.05 moves variants.decay.lr_schedule.boundaries (10, 20) of 30 '
           'epochs to (1, 1) of 2: a phase would vanish (the smallest epochs_scale that keeps '
           'every phase: 0.1, 3 epochs)'),
    (0.01, 'epochs_scale 0.01 makes the 30 epochs 0 (the smallest epochs_scale that keeps '
           'every phase: 0.1, 3 epochs)'),
    (0.0, 'epochs_scale must be > 0, got 0.0'),
])
def test_a_scale_that_makes_a_phase_vanish_is_refused_in_one_line(scale, message):
  config = _load('experiments/mnist_decay_vs_batch.py')
  with pytest.raises(ConfigError) as error:
    shorten.moves(config, scale)
  assert str(error.value) == message


def test_the_plan_is_the_shortened_configs_and_shortening_applies_once():
  config = _load('experiments/mnist_decay_vs_batch.py:hybrid', '--config.epochs_scale=0.5')
  short = shorten.shorten(config, 0.5)
  assert short.epochs_scale == 1.0 and short.num_epochs == 15
  assert shorten.apply(short) is short
  assert (_plan(config, 'hybrid', 54000).to_json() == _plan(short, 'hybrid', 54000).to_json())
  assert config.num_epochs == 30  # the study's config is left as it was


def test_nested_schedules_move_and_the_update_clock_stays():
  config = ml_collections.ConfigDict(dict(
      num_epochs=40, epochs_scale=0.25,
      lr_schedule=dict(name='warmup', length=4, schedule=dict(
          name='multistep', init_value=0.1, boundaries=(20, 30))),
      batch_schedule=dict(name='geometric', batch_size=8, growth=2.0, every=10),
      variants=dict(
          cosine=dict(lr_schedule=dict(name='cosine', init_value=0.1, decay_steps=40)),
          updates=dict(lr_schedule=dict(name='multistep', init_value=0.1, clock='update',
                                        boundaries=(1000, 2000))),
          cyclical=dict(lr_schedule=dict(name='triangular', base_lr=0.1, max_lr=1.0,
                                         step_size=2000)),
          smooth=dict(lr_schedule=dict(name='exponential', init_value=0.1, k=0.1)),
          noise=dict(batch_schedule=dict(name='match_noise', batch_size=8, reference=dict(
              name='step', init_value=0.1, gamma=0.5, step_size=8))))))
  moved = {m.path: (m.old, m.new) for m in shorten.moves(config, 0.25)}
  assert moved == {
      'num_epochs': (40, 10),
      'lr_schedule.schedule.boundaries': ((20, 30), (5, 8)),  # 7.5 rounds half up
      'lr_schedule.length': (4, 1),
      'batch_schedule.every': (10, 3),  # 2.5 rounds half up
      'variants.cosine.lr_schedule.decay_steps': (40, 10),
      'variants.noise.batch_schedule.reference.step_size': (8, 2)}
  with pytest.raises(ConfigError, match=r'lr_schedule.length 4 of 40 epochs to 0 of 4'):
    shorten.moves(config, 0.1)


def test_every_moved_key_is_a_parameter_of_its_registered_schedule():
  for table, registry in ((shorten.LR_KEYS, SCHEDULES), (shorten.BATCH_KEYS, BATCH_SCHEDULES)):
    for name, keys in table.items():
      assert set(keys) <= set(inspect.signature(registry[name]).parameters), name


def test_the_scale_is_recorded_and_names_its_own_runs():
  full = _load('experiments/mnist_decay_vs_batch.py:decay')
  short = _load('experiments/mnist_decay_vs_batch.py:decay', '--config.epochs_scale=0.1')
  assert resolve_variant(short, 'decay').to_dict()['epochs_scale'] == 0.1  # metadata's config
  assert fingerprint.fingerprint(full) != fingerprint.fingerprint(short)
  assert experiment.workdir_name('experiments/mnist_decay_vs_batch.py:decay', 0.1) == (
      'mnist_decay_vs_batch-decay-epochs_scale=0.1')
  assert experiment.workdir_name('experiments/mnist_decay_vs_batch.py') == 'mnist_decay_vs_batch'


def _launch(cwd: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, os.path.join(ROOT, 'launch.py'), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_launch_dry_run_shows_the_moved_boundaries_in_the_default_workdir(tmp_path):
  result = _launch(str(tmp_path), f'--config={MNIST}', '--config.epochs_scale=0.1', '--dry_run',
                   '--config.dataset.data_dir=/nonexistent/tfds')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert lines[0].startswith('epochs_scale 0.1: 30 epochs -> 3; lr_schedule.boundaries (10, 20) '
                             '-> (1, 2) (decay)')
  assert json.loads(lines[-1]) == {'decay': 2529, 'hybrid': 1263, 'increase': 1105,
                                   'noise_adaptive': 2529}
  plan = json.load(open(tmp_path / 'runs' / 'mnist_decay_vs_batch-epochs_scale=0.1' /
                        'increase' / 'plan.json'))
  assert [(p['start_epoch'], p['end_epoch'], p['batch_size']) for p in plan['phases']] == [
      (0, 1, 64), (1, 2, 256), (2, 3, 1024)]


@pytest.mark.parametrize('value, named', [
    ('0.05', 'a phase would vanish (the smallest epochs_scale that keeps every phase: 0.1'),
    ('-1', 'epochs_scale must be > 0'),
    ('tenth', '--config.epochs_scale=tenth'),
])
@pytest.mark.slow
def test_launch_refuses_a_bad_scale_in_one_line_before_anything_is_written(tmp_path, value, named):
  result = _launch(str(tmp_path), f'--config={MNIST}', f'--config.epochs_scale={value}',
                   '--config.dataset.data_dir=/nonexistent/tfds')
  assert result.returncode == 2
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith('launch.py: error: ') and named in line
  assert not os.path.exists(tmp_path / 'runs')
