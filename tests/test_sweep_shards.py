"""Sweeps that scale out: --sweep_shard=i/n runs a stable share of the points, shards run
at once into one WORKDIR, and one aggregation makes the table; a sweep without --workdir
gets a folder beside the base study's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from analysis import runs as runs_lib
from analysis import study_results
from lr_study import sweep, sweep_shards
from lr_study.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINTS = [(sweep.point_name(p), p) for p in sweep.grid(
    [('learning_rate', (0.02, 0.05)), ('batch_size', (8, 16))])]


@pytest.mark.parametrize('text, shard', [('0/1', (0, 1)), ('3/4', (3, 4)), (' 1 / 2 ', (1, 2)),
                                         (None, None)])
def test_a_shard_is_i_of_n(text, shard):
  assert sweep_shards.parse_shard(text) == shard


@pytest.mark.parametrize('text', ['2/2', '1/0', '-1/2', '1', 'a/b', '1/2/3', ''])
def test_a_malformed_shard_is_a_one_line_error_naming_it(text):
  with pytest.raises(ConfigError, match=f'--sweep_shard={text}: expected i/n with 0 <= i < n'):
    sweep_shards.parse_shard(text)


def test_the_shards_split_the_points_round_robin_each_once():
  shards = [sweep_shards.select_shard(POINTS, (i, 3)) for i in range(3)]
  assert [len(s) for s in shards] == [2, 1, 1]
  assert sorted(name for s in shards for name, _ in s) == sorted(name for name, _ in POINTS)
  assert sweep_shards.select_shard(POINTS, (1, 3)) == [POINTS[1]]  # the same share every time
  assert sweep_shards.select_shard(POINTS, None) == POINTS


def test_more_shards_than_points_or_no_sweep_is_an_error():
  with pytest.raises(ConfigError, match='the sweep has 4 point'):
    sweep_shards.select_shard(POINTS, (0, 5))
  with pytest.raises(ConfigError, match='--sweep_shard needs a sweep'):
    sweep_shards.select_shard([('', {})], (0, 1))


def test_a_sweeps_default_workdir_lies_beside_the_base_studys():
  assert sweep_shards.sweep_workdir('runs/digits_study', POINTS) == (
      'runs/digits_study-sweep=batch_size,learning_rate')
  assert sweep_shards.sweep_workdir('runs/digits_study', [('', {})]) == 'runs/digits_study'


def _launch(*args: str, cwd: str = ROOT) -> subprocess.Popen:
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one CPU device
  return subprocess.Popen([sys.executable, os.path.join(ROOT, 'launch.py'), *args], cwd=cwd,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_sweep_without_workdir_never_writes_into_the_base_study(tmp_path):
  config = f'--config={ROOT}/experiments/digits_study.py:decay'
  base = _launch(config, '--dry_run', cwd=str(tmp_path))
  swept = _launch(config, '--dry_run', '--sweep=learning_rate=0.02,0.05', cwd=str(tmp_path))
  for process in (base, swept):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
  assert sorted(os.listdir(tmp_path / 'runs')) == [
      'digits_study-decay', 'digits_study-decay-sweep=learning_rate']
  assert os.listdir(tmp_path / 'runs' / 'digits_study-decay') == ['decay']
  assert sorted(os.listdir(tmp_path / 'runs' / 'digits_study-decay-sweep=learning_rate')) == [
      'learning_rate=0.02', 'learning_rate=0.05']


@pytest.mark.slow
def test_two_shards_at_once_train_each_point_once_and_make_one_table(tmp_path):
  workdir = str(tmp_path / 'sweep')
  args = ('--config=experiments/digits_study.py:decay', '--config.seeds=0,',
          '--config.epochs_scale=0.1', '--sweep=learning_rate=0.02,0.05',
          '--sweep=batch_size=8,16', f'--workdir={workdir}')
  shards = [_launch(*args, f'--sweep_shard={i}/2') for i in range(2)]
  outputs = []
  for process in shards:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    outputs.append(out + err)
  # Each shard trained its own two points: 0 and 2, then 1 and 3, of the grid's order.
  shard_of = {name: k % 2 for k, (name, _) in enumerate(POINTS)}
  for i, output in enumerate(outputs):
    assert sorted(line[len('== sweep point '):] for line in output.splitlines()
                  if line.startswith('== sweep point ')) == sorted(
                      name for name, shard in shard_of.items() if shard == i)
  for name, point in POINTS:
    run_dir = os.path.join(workdir, name, 'decay', 'seed_0')
    metadata = json.load(open(os.path.join(run_dir, 'metadata.json')))
    assert metadata['sweep'] == point and metadata['resumes'] == []  # trained once
    assert f'--sweep_shard={shard_of[name]}/2' in metadata['command']
    assert metadata['cpu']['compiled_isa'] == metadata['cpu']['isa']  # no cap: the CPU's own
    assert {'jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint'} <= set(metadata['packages'])
    assert metadata['git']['commit'] and isinstance(metadata['git']['dirty'], bool)
    summary = json.load(open(os.path.join(run_dir, 'summary.json')))
    lines = open(os.path.join(run_dir, 'metrics.jsonl')).read().splitlines()
    assert summary['epochs'] == 4 and len(lines) == 4
  # The last shard to finish wrote the table; the one aggregation makes the same rows.
  written = open(os.path.join(workdir, 'table.md')).read()
  table = study_results.write_study_outputs(workdir, str(tmp_path / 'aggregated'))
  rows = [line for line in table.splitlines() if line.startswith('| ') and 'decay' in line]
  assert len(rows) == 4 and written.splitlines()[:6] == table.splitlines()[:6]
  assert len(runs_lib.load_runs(workdir)) == 4


@pytest.mark.parametrize('args, named', [
    (['--sweep_shard=0/2'], '--sweep_shard needs a sweep'),
    (['--sweep=learning_rate=0.02,0.05', '--sweep_shard=2/2'], '--sweep_shard=2/2: expected i/n'),
    (['--sweep=learning_rate=0.02,0.05', '--sweep_shard=0/2', '--restart'],
     "--restart with --sweep_shard would move the other shards' runs aside"),
])
@pytest.mark.slow
def test_a_bad_shard_is_one_line_and_status_2_before_anything_is_written(tmp_path, args, named):
  process = _launch(f'--workdir={tmp_path}/sweep', *args)
  out, err = process.communicate(timeout=300)
  assert process.returncode == 2 and err.count('\n') == 1 and named in err, err
  assert not os.path.exists(tmp_path / 'sweep')
