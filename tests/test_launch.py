"""launch.py as a user runs it: bad input fails fast in one line; the dry run and the
default study (conftest's session fixtures, on one CPU device) write what the README
promises."""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
from typing import Any

import pytest

from conftest import (CONFIG, RESULT_FIELDS, RUN, UPDATES_PER_EPOCH, assert_clean,
                      assert_same_results, last_update, once_per_run, one_line,
                      refused_in_one_line, run_results, succeeded, tree_digest)

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


def test_fused_dispatch_logs_the_same_metrics_as_one_update_per_dispatch(
    default_study, default_study_update_by_update):
  fused, one = default_study[1], default_study_update_by_update[1]
  recorded = [json.load(open(os.path.join(workdir, 'decay', 'seed_0', 'metadata.json')))['config']
              for workdir in (fused, one)]
  assert [c['updates_per_dispatch'] for c in recorded] == [32, 1]
  assert _metrics_without_wall_time(fused) == _metrics_without_wall_time(one)


# --- Bad inputs to launch.py and to the manual LR tool: one line, status 2, before any compute -


def _mnist_dir() -> str | None:
  for path in (os.path.join(ROOT, '..', 'shared', 'data', 'mnist'), '/work/shared/data/mnist'):
    if os.path.isdir(path) and len(os.listdir(path)) >= 4:
      return path
  return None


def _unwritable_dir(base: str) -> str | None:
  """A directory this process cannot write under (None where there is none to be had)."""
  locked = os.path.join(base, 'read_only')
  os.makedirs(locked)
  os.chmod(locked, 0o555)
  if not os.access(locked, os.W_OK):
    return os.path.join(locked, 'workdir')
  try:  # root writes anywhere on a normal filesystem; /sys refuses even root
    os.mkdir('/sys/lr_study_test_probe')
  except OSError:
    return '/sys/lr_study_test_workdir'
  os.rmdir('/sys/lr_study_test_probe')
  return None


MANUAL_PROGRAM = 'python -m lr_study.training.manual_lr'
LAUNCH = 'launch.py: error: '
BAD_LAUNCHES = {
    'seeds_not_a_number': (['--config.seeds=a'], 'seeds'),
    'seeds_empty': (['--config.seeds='], 'seeds'),
    'data_dir_is_a_file': (['--config=experiments/mnist_decay_vs_batch.py:decay',
                            '--config.dataset.data_dir={file}'], 'dataset.data_dir'),
    'workdir_is_a_file': (['--workdir={file}'], '--workdir'),
    'workdir_unwritable': (['--workdir={unwritable}'], '--workdir'),
    'config_file_raises': (['--config={raises}'], 'boom in get_config'),
    'config_file_syntax_error': (['--config={syntax}'], 'syntax.py'),
    'manual_dir_corrupt': (['--config=experiments/mnist_decay_vs_batch.py:decay',
                            '--config.dataset.manual_dir={mnist}',
                            '--config.dataset.data_dir={empty_data_dir}'], 'corrupt'),
    'checkpoint_every_epochs_negative': (['--config.checkpoint_every_epochs=-1'],
                                         'checkpoint_every_epochs'),
    'train_log_every_updates_negative': (['--config.train_log_every_updates=-1'],
                                         'train_log_every_updates'),
    'seeds_repeated_in_the_tuple': (['--config.seeds=3,3'], 'seeds'),
    'seeds_flag_given_twice': (['--config.seeds=0', '--config.seeds=1'], '--config.seeds'),
    'unknown_key': (['--config.lr=0.1'], "'lr'"),
    'whole_number_given_as_float': (['--config.batch_size=8.0'], 'batch_size'),
    'sweep_unknown_key': (['--sweep=no_such_key=1,2'], 'no_such_key'),
    'sweep_without_values': (['--sweep=learning_rate'], '--sweep=learning_rate'),
    'sweep_value_of_the_wrong_type': (['--sweep=learning_rate=abc'], 'learning_rate'),
    'seed_beyond_the_rng_range': (['--config.seeds=99999999999999999999,'],
                                  'seeds must be at most 2,147,483,647'),
    'num_epochs_too_many_to_plan': (['--config.num_epochs=1000000000'],
                                    'num_epochs must be at most 100,000'),
    'learning_rate_zero': (['--config.learning_rate=0'], 'learning_rate must be > 0'),
    'num_devices_zero': (['--dry_run', '--num_devices=0'], '--num_devices=0'),
    'workdir_empty': (['--workdir='], '--workdir is empty'),
    'sweep_key_also_overridden': (['--config.learning_rate=0.3', '--sweep=learning_rate=0.1,0.2'],
                                  "--config.learning_rate and the sweep of 'learning_rate'"),
    'run_variants_with_a_comma': (['--config.run_variants=decay,increase'],
                                  '--config=FILE.py:decay,increase'),
    'misspelt_key': (['--config.learning_rat=0.1'],
                     "'learning_rat' in --config.learning_rat=0.1: Did you mean \"learning_rate\""),
    'unknown_variant': ([f'--config={CONFIG}:nope'], f'config file {CONFIG} line '),
}
BAD_REQUESTS = {
    'lr_infinite': (['--run_dir={run_dir}', '--lr=inf'], '--lr'),
    'lr_negative': (['--run_dir={run_dir}', '--lr=-0.1'], '--lr'),
    'lr_nan': (['--run_dir={run_dir}', '--lr=nan'], '--lr'),
    'run_dir_missing': (['--run_dir={missing}', '--lr=0.01'], 'is not a directory'),
    'workdir_instead_of_run_dir': (['--run_dir={workdir}', '--lr=0.01'],
                                   'is not a run directory'),
    'run_that_has_ended': (['--run_dir={ended_run_dir}', '--lr=0.01'], 'the run has ended'),
}


@pytest.fixture(scope='session')
def bad_inputs(launcher, reference_workdir, tmp_path_factory) -> dict[str, Any]:
  """Every bad input's (result, places that must stay untouched, expected text), run
  three at a time, once per test run."""
  done = once_per_run(tmp_path_factory, 'bad_inputs',
                      lambda base: _run_bad_inputs(launcher, reference_workdir, base))
  done['results'] = {name: subprocess.CompletedProcess(**result)
                     for name, result in done['results'].items()}
  return done


def _run_bad_inputs(launcher, reference_workdir: str, base: str) -> dict[str, Any]:
  base = pathlib.Path(base)
  base.mkdir()
  places = {'file': str(base / 'a_file'), 'raises': str(base / 'raises.py'),
            'syntax': str(base / 'syntax.py'), 'empty_data_dir': str(base / 'tfds_mnist'),
            'missing': str(base / 'no_such_run')}
  with open(places['file'], 'w') as f:
    f.write('not a directory\n')
  with open(places['raises'], 'w') as f:
    f.write('def get_config(arg=None):\n  raise ValueError("boom in get_config")\n')
  with open(places['syntax'], 'w') as f:
    f.write('def get_config(arg=None)\n  return None\n')
  places['unwritable'] = _unwritable_dir(str(base)) or ''
  mnist = _mnist_dir()
  if mnist:
    places['mnist'] = str(base / 'mnist')
    shutil.copytree(mnist, places['mnist'])
    labels = os.path.join(places['mnist'], 'train-labels-idx1-ubyte.gz')
    with open(labels, 'rb') as f:
      data = gzip.decompress(f.read())
    with open(labels, 'wb') as f:  # a valid gzip of the wrong content
      f.write(gzip.compress(data[:len(data) // 2]))
  places['workdir'] = str(base / 'study')
  shutil.copytree(reference_workdir, places['workdir'],
                  ignore=shutil.ignore_patterns('checkpoints'))
  places['run_dir'] = os.path.join(places['workdir'], RUN)
  places['ended'] = str(base / 'ended')
  shutil.copytree(reference_workdir, places['ended'])
  places['ended_run_dir'] = os.path.join(places['ended'], RUN)

  jobs = {}
  for name, (flags, text) in BAD_LAUNCHES.items():
    workdir = str(base / name)
    args = [flag.format(**places) for flag in flags]
    if not any(flag.startswith('--config=') for flag in args):
      args.insert(0, f'--config={CONFIG}:decay')
      if not any(flag.startswith('--config.dataset.data_dir=') for flag in args):
        args.insert(1, f'--config.dataset.data_dir={launcher.data_dir}')
    if not any(flag.startswith('--workdir=') for flag in args):
      args.append(f'--workdir={workdir}')
    jobs[name] = ([sys.executable, 'launch.py', *args], workdir, LAUNCH, text)
  for name, (flags, text) in BAD_REQUESTS.items():
    args = [flag.format(**places) for flag in flags]
    jobs[name] = ([sys.executable, '-m', 'lr_study.training.manual_lr', *args], None,
                  f'{MANUAL_PROGRAM}: error: ', text)
  before = {'file': open(places['file']).read(), 'workdir': tree_digest(places['workdir']),
            'ended': tree_digest(places['ended'])}
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    futures = {name: pool.submit(launcher.run, job[0], 120) for name, job in jobs.items()
               if (mnist or name != 'manual_dir_corrupt')
               and (places['unwritable'] or name != 'workdir_unwritable')}
    results = {name: {k: getattr(future.result(), k) for k in RESULT_FIELDS}
               for name, future in futures.items()}
  return dict(jobs=jobs, results=results, places=places, before=before)


@pytest.mark.parametrize('name', [*BAD_LAUNCHES, *BAD_REQUESTS])
def test_a_bad_input_is_one_line_and_status_2_before_any_compute(name, bad_inputs):
  if name not in bad_inputs['results']:
    pytest.skip('no MNIST archives to corrupt' if 'manual_dir' in name
                else 'no unwritable directory for this user')
  args, workdir, prefix, text = bad_inputs['jobs'][name]
  result = bad_inputs['results'][name]
  assert result.returncode == 2, (args, result.stdout[-2000:], result.stderr[-2000:])
  line = one_line(result.stderr)
  assert line.startswith(prefix) and text in line, line
  assert '\\n' not in line and 'lr_study/' not in line, line  # no escaped lines, no own frames
  assert 'Traceback' not in result.stdout
  places = bad_inputs['places']
  if workdir is not None:
    assert not os.path.exists(workdir), os.listdir(workdir)  # nothing ran, nothing was written
  assert not os.path.exists(places['empty_data_dir'])
  with open(places['file']) as f:
    assert f.read() == bad_inputs['before']['file']
  assert tree_digest(places['workdir']) == bad_inputs['before']['workdir']  # no request written
  assert tree_digest(places['ended']) == bad_inputs['before']['ended']


# --- Ctrl-C and a full disk: one line each, then an exact resume -------------------------------


def test_ctrl_c_mid_epoch_stops_with_one_line_and_resumes_exactly(
    launcher, reference_results, decay_state_template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  process = launcher.start(args, str(tmp_path / 'interrupted'))
  mid_epoch_12 = 12 * UPDATES_PER_EPOCH + 60
  process.wait_for(lambda: last_update(run_dir) >= mid_epoch_12, f'update {mid_epoch_12}')
  process.proc.send_signal(signal.SIGINT)
  assert process.wait(timeout=60) == 130, process.output()[-3000:]
  assert one_line(process.stderr()) == ('launch.py: interrupted (Ctrl-C); the same command '
                                        'resumes from the last checkpoint')
  assert not os.path.exists(os.path.join(run_dir, 'lock.json'))
  succeeded(launcher.run(args))
  assert_clean(run_dir)
  assert_same_results(run_results(run_dir, decay_state_template), reference_results)


@pytest.fixture
def small_disk(tmp_path):
  """A 400 KiB tmpfs (root only), grown to 64 MiB by calling what it yields."""
  path = tmp_path / 'disk'
  path.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=400k', 'tmpfs', str(path)],
                    capture_output=True, check=False).returncode:
    pytest.skip('no tmpfs to fill: mounting one needs root')
  try:
    yield str(path), lambda: subprocess.run(
        ['mount', '-o', 'remount,size=64m', str(path)], check=True)
  finally:
    subprocess.run(['umount', str(path)], check=False)


def test_a_full_disk_stops_with_one_line_and_resumes_exactly_once_space_is_freed(
    launcher, reference_results, decay_state_template, small_disk):
  disk, grow = small_disk
  workdir = os.path.join(disk, 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  line = refused_in_one_line(launcher, args)
  assert line.startswith('launch.py: error: no space left on device for ') and line.endswith(
      ': free some, then the same command resumes from the last checkpoint'), line
  grow()
  succeeded(launcher.run(args))
  assert_clean(run_dir)
  assert_same_results(run_results(run_dir, decay_state_template), reference_results)
