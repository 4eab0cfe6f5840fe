"""analysis.study_results: the table (markdown and CSV) and figure over one or many
study directories, from run logs alone."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from analysis import runs as runs_lib
from analysis import study_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(variant: str, optimizer: str = 'momentum', dataset: str = 'digits') -> dict[str, Any]:
  return {'variant': variant, 'seeds': [0, 1, 2],
          'dataset': {'name': dataset, 'train_split': 'train', 'data_dir': '/somewhere'},
          'model': {'name': 'mlp', 'widths': [128, 128]},
          'optimizer': {'name': optimizer, 'momentum': 0.9}}


def write_run(root: str, variant: str, seed: int, accuracy: float, *, point_dir: str = '',
              sweep: dict[str, Any] | None = None, updates_per_epoch: int = 10,
              epochs: int = 4, diverged_at: int | None = None,
              config: dict[str, Any] | None = None) -> str:
  """A run directory with the files a run writes: metrics, summary, metadata, plan."""
  run_dir = os.path.join(root, point_dir, variant, f'seed_{seed}')
  os.makedirs(run_dir)
  rows = []
  for epoch in range(1, epochs + 1):
    update = epoch * updates_per_epoch
    if diverged_at is not None and update > diverged_at:
      rows.append({'epoch': float(epoch), 'update': update, 'train_loss': None,
                   'test_loss': None, 'test_accuracy': 0.1, 'wall_time': epoch * 0.5})
      break
    rows.append({'epoch': float(epoch), 'update': update, 'examples_seen': update * 8,
                 'learning_rate': 0.1, 'batch_size': 8, 'noise_scale': 100.0,
                 'train_loss': 1.0 / epoch, 'test_loss': 1.0 / epoch,
                 'test_accuracy': accuracy - 0.1 * (epochs - epoch), 'wall_time': epoch * 0.5})
  with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in rows)
  summary = {'variant': variant, 'seed': seed, 'epochs': epochs,
             'updates': rows[-1]['update'], 'examples_seen': rows[-1]['update'] * 8,
             'final_test_accuracy': rows[-1]['test_accuracy'],
             'final_test_loss': rows[-1]['test_loss'], 'wall_time': rows[-1]['wall_time']}
  if diverged_at is not None:
    summary.update(status='diverged', diverged_at_update=diverged_at)
  metadata = {'config': config or _config(variant), 'seed': seed}
  if sweep is not None:
    metadata['sweep'] = sweep
  for name, obj in (('summary.json', summary), ('metadata.json', metadata),
                    ('plan.json', {'phases': [], 'total_updates': epochs * updates_per_epoch})):
    with open(os.path.join(run_dir, name), 'w') as f:
      json.dump(obj, f)
  return run_dir


def _study(root: str) -> str:
  for seed, accuracy in enumerate((0.96, 0.97, 0.98)):
    write_run(root, 'decay', seed, accuracy, updates_per_epoch=20)
    write_run(root, 'increase', seed, accuracy - 0.01, updates_per_epoch=5)
  with open(os.path.join(root, 'study_config.json'), 'w') as f:
    json.dump({'run_variants': ['increase', 'decay']}, f)
  return root


def _csv(text: str) -> list[dict[str, str]]:
  return list(csv.DictReader(io.StringIO(text)))


def test_markdown_has_one_row_per_variant_with_mean_and_std_over_seeds(tmp_path):
  table = study_results.write_study_outputs(_study(str(tmp_path)))
  lines = table.splitlines()
  assert lines[0] == ('| schedule | final test accuracy (%) | seeds | epochs | parameter updates '
                      '| examples seen | wall time (s) |')
  assert lines[2] == '| increase | 96.00 ± 1.00 | 3 | 4 | 20 | 160 | 2.0 |'  # study order
  assert lines[3] == '| decay | 97.00 ± 1.00 | 3 | 4 | 80 | 640 | 2.0 |'


def test_csv_has_one_row_per_run_under_a_plain_header(tmp_path):
  study_results.write_study_outputs(_study(str(tmp_path)))
  text = open(tmp_path / 'table.csv').read()
  rows = _csv(text)
  assert text.splitlines()[0] == ('workdir,point,variant,seed,status,diverged_at_update,'
                                  'final_test_accuracy,final_test_loss,updates,examples_seen,'
                                  'epochs,wall_time')
  assert [(r['variant'], int(r['seed'])) for r in rows] == [
      ('increase', 0), ('increase', 1), ('increase', 2), ('decay', 0), ('decay', 1), ('decay', 2)]
  assert float(rows[3]['final_test_accuracy']) == pytest.approx(0.96)
  assert (rows[3]['status'], rows[3]['diverged_at_update'], rows[3]['updates']) == (
      'finished', '', '80')


def test_swept_values_come_from_metadata_and_group_the_table(tmp_path):
  for lr, shift in ((0.02, 0.0), (0.05, 0.01)):
    for seed in (0, 1):
      write_run(str(tmp_path), 'decay', seed, 0.9 + shift + 0.01 * seed,
                point_dir=f'learning_rate={lr}', sweep={'learning_rate': lr})
  lines = study_results.write_study_outputs(str(tmp_path)).splitlines()
  assert lines[0].startswith('| learning_rate | schedule | final test accuracy (%) |')
  assert lines[2].startswith('| 0.02 | decay | 90.50 ± 0.71 | 2 |')
  assert lines[3].startswith('| 0.05 | decay | 91.50 ± 0.71 | 2 |')
  rows = _csv(open(tmp_path / 'table.csv').read())
  assert [(r['point'], r['learning_rate']) for r in rows] == [
      ('learning_rate=0.02', '0.02')] * 2 + [('learning_rate=0.05', '0.05')] * 2


def test_a_study_directory_without_a_recorded_point_is_named_as_a_study(tmp_path):
  write_run(str(tmp_path), 'decay', 0, 0.9, point_dir='old_study')
  (run,) = runs_lib.load_runs(str(tmp_path))
  assert run.point == {'study': 'old_study'} and run.point_name == 'old_study'


def test_points_sort_by_value_not_by_name(tmp_path):
  for lr in (0.1, 0.02):
    write_run(str(tmp_path), 'decay', 0, 0.9, point_dir=f'learning_rate={lr}',
              sweep={'learning_rate': lr})
  assert [r.point['learning_rate'] for r in runs_lib.load_runs(str(tmp_path))] == [0.02, 0.1]


def test_a_diverged_run_shows_its_update_and_no_accuracy(tmp_path):
  write_run(str(tmp_path), 'decay', 0, 0.95)
  write_run(str(tmp_path), 'decay', 1, 0.97)
  write_run(str(tmp_path), 'decay', 2, 0.97, diverged_at=25)
  write_run(str(tmp_path), 'increase', 0, 0.97, diverged_at=15)
  lines = study_results.write_study_outputs(str(tmp_path)).splitlines()
  assert lines[2].startswith('| decay | 96.00 ± 1.41 (2 seeds); seed 2 diverged at update 25 | 3 |')
  assert lines[3].startswith('| increase | diverged at update 15 | 1 |')
  rows = {(r['variant'], r['seed']): r for r in _csv(open(tmp_path / 'table.csv').read())}
  assert rows['decay', '2']['status'] == 'diverged'
  assert rows['decay', '2']['diverged_at_update'] == '25'
  assert rows['decay', '2']['final_test_accuracy'] == ''
  assert rows['decay', '2']['final_test_loss'] == ''


def test_json_null_reads_as_a_missing_value(tmp_path):
  run_dir = write_run(str(tmp_path), 'decay', 0, 0.95)
  summary = json.load(open(os.path.join(run_dir, 'summary.json')))
  summary['final_test_loss'] = None
  json.dump(summary, open(os.path.join(run_dir, 'summary.json'), 'w'))
  study_results.write_study_outputs(str(tmp_path))
  (row,) = _csv(open(tmp_path / 'table.csv').read())
  assert row['final_test_loss'] == '' and float(row['final_test_accuracy']) == 0.95


def test_several_workdirs_of_one_config_pool_their_seeds(tmp_path):
  first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
  write_run(first, 'decay', 0, 0.96)
  write_run(second, 'decay', 1, 0.98)
  lines = study_results.write_study_outputs([first, second], str(tmp_path / 'out')).splitlines()
  assert lines[2].startswith('| decay | 97.00 ± 1.41 | 2 |')
  assert os.path.exists(tmp_path / 'out' / 'table.csv')
  assert not os.path.exists(os.path.join(first, 'table.md'))


def test_workdirs_of_different_configs_stay_apart_named_by_workdir(tmp_path):
  first, second = str(tmp_path / 'sgd_study'), str(tmp_path / 'adam_study')
  write_run(first, 'decay', 0, 0.96, config=_config('decay', 'sgd'))
  write_run(second, 'decay', 0, 0.98, config=_config('decay', 'adam'))
  lines = study_results.write_study_outputs([first, second], str(tmp_path)).splitlines()
  assert lines[0].startswith('| study | schedule |')
  assert sorted(line.split('|')[1].strip() for line in lines[2:]) == ['adam_study', 'sgd_study']


def test_runs_still_training_are_left_out_of_the_table(tmp_path):
  _study(str(tmp_path))
  os.remove(tmp_path / 'decay' / 'seed_2' / 'summary.json')
  lines = study_results.write_study_outputs(str(tmp_path)).splitlines()
  assert lines[3].startswith('| decay | 96.50 ± 0.71 | 2 |')


def test_outputs_are_the_table_and_the_accuracy_figure_as_png_and_pdf(tmp_path):
  study_results.write_study_outputs(_study(str(tmp_path)))
  for name in study_results.OUTPUTS:
    assert os.path.getsize(tmp_path / name) > 0
  assert open(tmp_path / 'figure.png', 'rb').read(4) == b'\x89PNG'
  assert open(tmp_path / 'figure.pdf', 'rb').read(4) == b'%PDF'


def test_no_finished_run_is_an_error_naming_the_workdir(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    study_results.write_study_outputs(str(tmp_path))


@pytest.mark.slow
def test_cli_rebuilds_the_outputs_of_several_workdirs_into_out_dir(tmp_path):
  first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
  write_run(first, 'decay', 0, 0.96)
  write_run(second, 'decay', 1, 0.98)
  result = subprocess.run(
      [sys.executable, '-m', 'analysis.study_results', f'--workdir={first}',
       f'--workdir={second}', f'--out_dir={tmp_path}/out'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert '| decay | 97.00 ± 1.41 | 2 |' in result.stdout
  assert sorted(os.listdir(tmp_path / 'out')) == sorted(study_results.OUTPUTS)


def test_a_sweep_keeps_the_run_order_of_its_points_study_configs(tmp_path):
  for variant in ('decay', 'increase'):
    write_run(str(tmp_path), variant, 0, 0.9, point_dir='learning_rate=0.1',
              sweep={'learning_rate': 0.1})
  with open(tmp_path / 'learning_rate=0.1' / 'study_config.json', 'w') as f:
    json.dump({'run_variants': ['increase', 'decay']}, f)
  assert [r.variant for r in runs_lib.load_runs(str(tmp_path))] == ['increase', 'decay']


# --- Files it cannot read or write: one line naming them, status 2 -------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'analysis.study_results', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def unwritable_dir(tmp_path) -> str:
  """A directory path this process cannot create (root writes past mode bits: not in sysfs)."""
  if os.geteuid() == 0:
    return '/sys/lr_study_out'
  os.mkdir(tmp_path / 'read_only', 0o555)
  return str(tmp_path / 'read_only' / 'out')


@pytest.mark.slow
def test_cli_names_the_file_and_line_of_a_damaged_log_in_one_line(tmp_path):
  run_dir = write_run(str(tmp_path), 'decay', 0, 0.96)
  path = os.path.join(run_dir, 'metrics.jsonl')
  lines = open(path).read().splitlines(keepends=True)
  lines[1] = '{"epoch": 2.0, "upd\n'
  open(path, 'w').writelines(lines)
  result = _cli(f'--workdir={tmp_path}')
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith(f'analysis.study_results: error: {path} line 2 is not JSON: ')
  assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stdout
  assert not os.path.exists(tmp_path / 'table.md')


@pytest.mark.slow
def test_cli_warns_of_a_torn_last_line_naming_the_file_and_line(tmp_path):
  run_dir = write_run(str(tmp_path), 'decay', 0, 0.96)
  path = os.path.join(run_dir, 'metrics.jsonl')
  with open(path, 'a') as f:
    f.write('{"epoch": 5.0, "upd')
  result = _cli(f'--workdir={tmp_path}')
  assert result.returncode == 0, result.stderr
  assert result.stderr == f'warning: {path} line 5: a torn last record, skipped\n'


@pytest.mark.slow
def test_cli_refuses_an_out_dir_it_cannot_write_in_one_line(tmp_path):
  write_run(str(tmp_path / 'study'), 'decay', 0, 0.96)
  out_dir = unwritable_dir(tmp_path)
  result = _cli(f'--workdir={tmp_path}/study', f'--out_dir={out_dir}')
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith(f"analysis.study_results: error: --out_dir '{out_dir}' is "
                                  'not a usable directory: ')
  assert result.stderr.count('\n') == 1 and not os.path.exists(out_dir)


# --- One seed, unequal epochs, the environment ------------------------------------------------


def test_one_seed_has_no_spread(tmp_path):
  write_run(str(tmp_path), 'decay', 0, 0.9731)
  lines = study_results.write_study_outputs(str(tmp_path)).splitlines()
  assert lines[2].startswith('| decay | 97.31 ± — | 1 |')


def _phase(start, end, batch_size, dropped, offset=0):
  return {'start_epoch': start, 'end_epoch': end, 'batch_size': batch_size,
          'dropped_per_epoch': dropped, 'start_offset': offset}


def test_a_variant_dropping_over_5_percent_of_each_epoch_is_warned_below_the_table(tmp_path):
  for variant, examples in (('decay', 57_280), ('increase', 52_720)):
    run_dir = write_run(str(tmp_path), variant, 0, 0.97)
    plan = {'num_train_examples': 1437,
            'phases': [_phase(0, 30, 8, 5)] + [_phase(30, 40, 512, 413)] * (variant == 'increase')}
    summary = json.load(open(os.path.join(run_dir, 'summary.json')))
    for name, obj in (('plan.json', plan), ('summary.json', {**summary, 'examples_seen': examples})):
      with open(os.path.join(run_dir, name), 'w') as f:
        json.dump(obj, f)
  text = study_results.write_study_outputs(str(tmp_path))
  notes = text.split('\n\n', 1)[1].splitlines()
  assert notes == [
      'warning: increase: epochs 30-40 at B = 512 drop 413 of the N = 1,437 examples of each '
      'epoch (28.7%, over 5%): runs compared at equal epochs see unequal data; choose a batch '
      'that divides N better',
      'warning: increase sees 52,720 examples, decay 57,280: 8.6% more, over 5% (unequal epochs)']
  assert open(tmp_path / 'table.md').read() == text + '\n'


def test_the_table_names_the_environment_of_its_runs(tmp_path):
  run_dir = write_run(str(tmp_path), 'decay', 0, 0.97)
  metadata = json.load(open(os.path.join(run_dir, 'metadata.json')))
  metadata.update(devices={'platform': 'cpu', 'local_device_count': 1, 'kinds': ['cpu']},
                  cpu={'model': 'AMD EPYC 7B13', 'isa': 'AVX2', 'xla_cpu_max_isa': None,
                       'compiled_isa': 'AVX2'}, host_cpus=2,
                  packages={'jax': '0.10.2', 'jaxlib': '0.10.2'},
                  git={'commit': 'abcdef0' + '1' * 33, 'dirty': False})
  with open(os.path.join(run_dir, 'metadata.json'), 'w') as f:
    json.dump(metadata, f)
  assert study_results.write_study_outputs(str(tmp_path)).splitlines()[-1] == (
      'environment: cpu (1 × cpu), 2 host CPU cores, AMD EPYC 7B13, XLA compiling for AVX2; '
      'jax 0.10.2, jaxlib 0.10.2; commit abcdef0')
