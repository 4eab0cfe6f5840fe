"""launch.py as a user runs it: bad input fails fast in one line; the dry run and the
default study (conftest's session fixtures, on one CPU device) write what the README
promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import launch_on_one_device

pytestmark = pytest.mark.slow  # every test runs launch.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
  """``python launch.py ARGS`` on this pytest run's devices (XLA_FLAGS as they are)."""
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=ROOT, env=dict(os.environ),
                        capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize('flag, named', [
    ('--config.no_such_key=1', "unknown config key 'no_such_key' in --config.no_such_key=1"),
    ('--config.model.no_such_key=1', "unknown config key 'no_such_key'"),
    ('--config=experiments/digits_study.py:no_such_variant', "unknown variant 'no_such_variant'"),
    ('--config.num_epochs=many', '--config.num_epochs=many'),
    ('--config.variants.decay.lr_schedule.name=no_such_schedule', "unknown schedule 'no_such_schedule'"),
    ('--config.model.name=no_such_model', "unknown model 'no_such_model'"),
    ('--config.optimizer.name=no_such_optimizer', "no_such_optimizer"),
    pytest.param('--config.batch_schedule.batch_size=12', 'batch',  # 12 on 8 devices
                 marks=pytest.mark.multidevice),
    ('--config=experiments/no_such_file.py', 'no_such_file.py'),
    ('--config.dataset.train_split=training', "dataset.train_split 'training'"),
    ('--config.gradient_noise_every_epochs=0',
     'gradient_noise_every_epochs must be a whole number >= 1, got 0'),
    ('--config.gradient_noise_batch_size=-1',
     'gradient_noise_batch_size must be a whole number >= 0, got -1'),
    pytest.param('--config.gradient_noise_batch_size=1000',  # a chunk of 1000 per device
                 'gradient_noise_batch_size=1000 leaves 0 chunk(s) of the 1437 training examples',
                 marks=pytest.mark.multidevice),
    ('--no_such_flag=1', "no_such_flag"),
])
def test_bad_input_is_a_one_line_error_before_any_data_is_loaded(flag, named, tmp_path):
  workdir = str(tmp_path / 'run')
  # A dataset path that does not exist: the error must come before it is looked at.
  result = _launch(flag, f'--workdir={workdir}', '--config.dataset.data_dir=/nonexistent/tfds')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith('launch.py: error: ') and named in lines[0]
  assert not os.path.exists(workdir)


def test_missing_dataset_is_a_one_line_error_naming_how_to_provide_it(tmp_path):
  result = _launch('--config=experiments/mnist_decay_vs_batch.py:decay',
                   f'--config.dataset.data_dir={tmp_path}/tfds', f'--workdir={tmp_path}/run')
  assert result.returncode == 2
  (line,) = result.stderr.strip().splitlines()
  assert 'mnist' in line and 'manual_dir' in line


def test_bad_dataset_path_is_a_one_line_error_naming_it(tmp_path):
  result = _launch('--config=experiments/mnist_decay_vs_batch.py:decay',
                   f'--config.dataset.data_dir={tmp_path}/tfds',
                   '--config.dataset.manual_dir=/no/such/folder', f'--workdir={tmp_path}/run')
  assert result.returncode == 2
  (line,) = result.stderr.strip().splitlines()
  assert '/no/such/folder' in line


def test_dry_run_prints_and_writes_the_plan_without_data(tmp_path):
  result = _launch('--config=experiments/cifar10_wrn.py:decay,hybrid,increase', '--dry_run',
                   f'--workdir={tmp_path}', '--config.dataset.data_dir=/nonexistent/tfds')
  assert result.returncode == 0, result.stderr
  totals = json.loads(result.stdout.strip().splitlines()[-1])
  assert totals == {'decay': 78000, 'hybrid': 34320, 'increase': 28800}
  plan = json.load(open(tmp_path / 'increase' / 'plan.json'))
  assert plan['total_updates'] == 28800
  assert [p['batch_size'] for p in plan['phases']] == [128, 640, 3200, 16000]
  assert 'tensorflow' not in result.stderr.lower()


def test_default_study_prints_the_table_and_writes_logs_and_figure(default_study):
  result, workdir = default_study
  table = [line for line in result.stdout.splitlines() if line.startswith('| ')]
  assert [row.split('|')[1].strip() for row in table[1:]] == ['decay', 'hybrid', 'increase']
  for name in ('table.md', 'table.csv', 'figure.png'):
    assert os.path.getsize(workdir / name) > 0
  for variant in ('decay', 'hybrid', 'increase'):
    assert os.path.exists(workdir / variant / 'seed_0' / 'metrics.jsonl')
  updates = {row.split('|')[1].strip(): int(row.split('|')[5].replace(',', ''))
             for row in table[1:]}
  assert updates['increase'] < updates['hybrid'] < updates['decay']


def test_default_study_logs_a_finite_positive_noise_scale_every_ten_epochs(default_study):
  _, workdir = default_study
  for variant, lines in _metrics_without_wall_time(workdir).items():
    measured = {line['epoch']: line['gradient_noise_scale'] for line in lines
                if 'gradient_noise_scale' in line}
    assert sorted(measured) == [10, 20, 30, 40], variant
    assert all(isinstance(s, float) and 0 < s < float('inf') for s in measured.values()), (
        variant, measured)


def _metrics_without_wall_time(workdir) -> dict[str, list[dict]]:
  out = {}
  for variant in ('decay', 'hybrid', 'increase'):
    with open(os.path.join(workdir, variant, 'seed_0', 'metrics.jsonl')) as f:
      out[variant] = [{k: v for k, v in json.loads(line).items() if k != 'wall_time'} for line in f]
  return out


def test_default_study_compiles_its_train_step_once_per_shape_for_all_seeds(
    digits_data_dir, tmp_path):
  # In 4 of its 40 epochs: the same phases, so the same batch sizes, in a tenth of the updates.
  result = launch_on_one_device(f'--config.dataset.data_dir={digits_data_dir}',
                                f'--workdir={tmp_path}', '--config.epochs_scale=0.1')
  assert result.returncode == 0, result.stderr[-2000:]
  assert ('train step compiled 7 time(s) in all, once per distinct shape of each variant for '
          'all 3 seed(s): decay 1, hybrid 2, increase 4') in result.stdout


def test_fused_dispatch_logs_the_same_metrics_as_one_update_per_dispatch(
    default_study, default_study_update_by_update):
  fused, one = default_study[1], default_study_update_by_update[1]
  recorded = [json.load(open(os.path.join(workdir, 'decay', 'seed_0', 'metadata.json')))['config']
              for workdir in (fused, one)]
  assert [c['updates_per_dispatch'] for c in recorded] == [32, 1]
  assert _metrics_without_wall_time(fused) == _metrics_without_wall_time(one)
