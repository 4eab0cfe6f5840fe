"""lr_study.runtime.resume: a run goes on only where its record stays true, and says in one
line why not otherwise; lr_study.runtime.metadata: each resume is recorded."""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
import pytest

from conftest import (CONFIG, EPOCHS, LOG_EVERY, Launcher, ROOT, RUN, TOTAL_UPDATES,
                      UPDATES_PER_EPOCH, assert_clean, assert_same_results, assert_strict_json,
                      checkpoint_steps, committed_steps, copy_reference, digits_run_config,
                      last_update, log_lines, refused_in_one_line, run_results, saving_checkpoint,
                      succeeded, tree_digest)
from lr_study import config as schema
from lr_study.data.feeds import load_feed
from lr_study.errors import ConfigError
from lr_study.plan import build_plan
from lr_study.runtime import metadata, resume, run_files
from lr_study.training import checkpoint
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import prepare_run
from lr_study.training.step import StepCompiler, init_train_state

N = 1050  # training examples: 10 updates per epoch at B = 100


def _config(num_epochs: int = 8, **overrides) -> ml_collections.ConfigDict:
  config = schema.get_config()
  config.variant = 'test'
  config.num_epochs = num_epochs
  config.lr_schedule = dict(name='multistep', init_value=0.1, boundaries=(2,), factors=0.5)
  config.batch_schedule = dict(name='multistep', batch_size=100, boundaries=(4,), factor=2)
  config.gradient_noise_every_epochs = 4
  with config.ignore_type():
    for key, value in overrides.items():
      config[key] = value
  return config


RAMP = dict(name='linear_ramp', batch_size=50, final_batch_size=200, over=0.5)


def _plan(config: ml_collections.ConfigDict):
  return build_plan(config, 1, N)


def _disagreement(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict,
                  done: int | None = None) -> str | None:
  old_plan = _plan(old)
  done = old_plan.total_updates if done is None else done
  return resume.plan_disagreement(old_plan, _plan(new), done, new)


# --- The plans at the updates done ----------------------------------------------------------


def test_an_extension_with_the_same_updates_so_far_agrees():
  assert _disagreement(_config(8), _config(12)) is None


def test_a_plan_shorter_than_the_updates_done_disagrees():
  why = _disagreement(_config(8), _config(7))  # 60 updates done, 55 planned
  assert why == 'the new plan has 55 updates in all'


def test_cutting_an_unfinished_run_where_it_has_not_reached_agrees():
  assert _disagreement(_config(8), _config(6), done=30) is None


def test_a_batch_ramp_stretched_over_more_epochs_disagrees_at_its_first_changed_update():
  why = _disagreement(_config(8, batch_schedule=RAMP), _config(12, batch_schedule=RAMP))
  assert why is not None and why.startswith('the new plan changes the batch size of update ')


def test_another_learning_rate_at_an_update_done_disagrees():
  other_lr = dict(name='multistep', init_value=0.1, boundaries=(3,), factors=0.5)
  why = _disagreement(_config(8), _config(12, lr_schedule=other_lr))
  assert why == 'the new plan changes the learning rate of update 20: 0.05 -> 0.1'


def test_a_last_evaluation_the_longer_plan_would_not_make_disagrees():
  why = _disagreement(_config(8, eval_every_epochs=3), _config(12, eval_every_epochs=3))
  assert why == 'its last evaluation, after epoch 8, is not one of the new plan (every 3 epochs)'


def test_a_last_gradient_noise_measurement_the_longer_plan_would_not_make_disagrees():
  why = _disagreement(_config(6), _config(12))
  assert why == ('its last gradient noise measurement, after epoch 6, is not one of the new '
                 'plan (every 4 epochs)')


def test_without_a_gradient_noise_measurement_its_cadence_does_not_matter():
  assert _disagreement(_config(6, gradient_noise_batch_size=0),
                       _config(12, gradient_noise_batch_size=0)) is None


def test_an_unfinished_run_may_go_on_past_an_evaluation_cadence_it_has_not_ended_on():
  assert _disagreement(_config(8, eval_every_epochs=3), _config(12, eval_every_epochs=3),
                       done=30) is None


# --- check_resumable on a run directory -----------------------------------------------------


def _finished_run(run_dir: str, config: ml_collections.ConfigDict) -> None:
  plan = _plan(config)
  run_files.make_dirs(run_dir)
  run_files.write_json(os.path.join(run_dir, run_files.METADATA),
                       metadata.run_metadata(config, plan, 0, {}))
  run_files.write_json(os.path.join(run_dir, run_files.SUMMARY),
                       {'updates': plan.total_updates, 'epochs': plan.num_epochs})


def test_a_finished_run_with_fewer_epochs_is_refused_naming_restart(tmp_path):
  run_dir = str(tmp_path)
  _finished_run(run_dir, _config(8))
  with pytest.raises(ConfigError) as error:
    resume.check_resumable(run_dir, _config(7))
  message = str(error.value)
  assert message.startswith(f'run_dir {run_dir}: num_epochs 8 -> 7 would relabel its 60 '
                            'updates done: the new plan has 55 updates in all')
  assert '--restart' in message and '\n' not in message


def test_a_finished_run_extended_over_the_same_updates_may_go_on(tmp_path):
  _finished_run(str(tmp_path), _config(8))
  resume.check_resumable(str(tmp_path), _config(12))


def test_a_changed_result_key_is_refused_naming_the_key_and_restart(tmp_path):
  _finished_run(str(tmp_path), _config(8))
  with pytest.raises(ConfigError, match=r'different config: learning_rate 0.05 -> 0.5; rerun '
                                        r'with --restart'):
    resume.check_resumable(str(tmp_path), _config(8, learning_rate=0.5))


def test_checkpoints_without_metadata_are_refused(tmp_path):
  os.makedirs(tmp_path / 'checkpoints' / '30')
  with pytest.raises(ConfigError, match=r'holds 30 updates but no metadata.json: what config '
                                        r'made them is unknown; rerun with --restart'):
    resume.check_resumable(str(tmp_path), _config(8))


def test_a_directory_without_updates_done_may_start(tmp_path):
  resume.check_resumable(str(tmp_path), _config(8))


# --- check_logs -----------------------------------------------------------------------------


def _log(path: str, records: int, tail: str = '') -> None:
  run_files.write_atomic(path, ''.join(f'{{"update": {u}}}\n' for u in range(records)) + tail)


def test_logs_holding_what_their_checkpoint_counted_pass_torn_tail_and_all(tmp_path):
  _log(str(tmp_path / run_files.METRICS), 4, tail='{"upd')
  resume.check_logs(str(tmp_path), {run_files.METRICS: 4}, 40)


@pytest.mark.parametrize('records', [0, 3])
def test_a_log_emptied_or_cut_below_its_checkpoint_count_is_refused(records, tmp_path):
  path = str(tmp_path / run_files.METRICS)
  _log(path, records)
  with pytest.raises(ConfigError) as error:
    resume.check_logs(str(tmp_path), {run_files.METRICS: 4}, 40)
  assert str(error.value) == (
      f'{path} holds {records} of the 4 records its checkpoint of update 40 counted: the log '
      f'was deleted or cut after it was written; {resume.RESTART}')


def test_a_deleted_log_is_refused(tmp_path):
  with pytest.raises(ConfigError, match='holds 0 of the 2 records'):
    resume.check_logs(str(tmp_path), {run_files.TRAIN_LOG: 2}, 40)


def test_a_corrupt_line_within_the_counted_records_is_refused_naming_it(tmp_path):
  path = str(tmp_path / run_files.METRICS)
  run_files.write_atomic(path, '{"update": 0}\n{"upd garbage\n{"update": 2}\n')
  with pytest.raises(ConfigError, match=rf'^{path} line 2 is not JSON: .*--restart'):
    resume.check_logs(str(tmp_path), {run_files.METRICS: 3}, 40)


def test_a_checkpoint_that_counted_no_lines_checks_nothing(tmp_path):
  resume.check_logs(str(tmp_path), None, 40)


# --- metadata: one record per resume --------------------------------------------------------


def test_a_resume_appends_its_own_record_and_keeps_where_the_run_started():
  config = _config(8)
  started = metadata.run_metadata(config, _plan(config), 0, {})
  first = metadata.of_run(started, config, _plan(config), 0, {}, 30)
  again = metadata.of_run(first, config, _plan(config), 0, {}, 50)
  assert again['devices'] == started['devices'] and again['started'] == started['started']
  assert [r['update'] for r in again['resumes']] == [30, 50]
  assert all(r['devices']['device_count'] >= 1 for r in again['resumes'])
  assert 'num_epochs' not in again['resumes'][0] and again['config'] == started['config']


def test_an_extension_records_its_epochs_and_takes_the_new_config():
  old, new = _config(8), _config(12)
  extended = metadata.of_run(metadata.run_metadata(old, _plan(old), 0, {}), new, _plan(new), 0,
                             {}, 60)
  assert extended['resumes'][-1]['num_epochs'] == {'from': 8, 'to': 12}
  assert extended['config']['num_epochs'] == 12
  assert extended['plan']['total_updates'] == _plan(new).total_updates


def test_a_fresh_start_records_no_resume():
  config = _config(8)
  assert metadata.of_run(None, config, _plan(config), 0, {}, 0)['resumes'] == []


# --- Through the training loop: refused byte-identical, or continued exactly ----------------


def _loop_config(data_dir: str, num_epochs: int) -> ml_collections.ConfigDict:
  return digits_run_config(data_dir, num_epochs=num_epochs, gradient_noise_every_epochs=2,
                           lr_schedule=dict(name='constant', init_value=0.05),
                           batch_schedule=dict(name='multistep', batch_size=64, boundaries=(2,),
                                               factor=2))


def _train(config: ml_collections.ConfigDict, run_dir: str) -> dict:
  setup = prepare_run(config)
  compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule, augment=False)
  return train_and_evaluate(setup, load_feed(config.dataset, setup.spec), run_dir, 0, compiler)


def _tree(path: str) -> dict[str, bytes]:
  return {os.path.relpath(os.path.join(d, n), path): open(os.path.join(d, n), 'rb').read()
          for d, _, names in os.walk(path) for n in names}


def _record(run_dir: str, template) -> tuple:
  """What a run leaves, less wall times and this process's compile count."""
  logs = [[{k: v for k, v in r.items() if k != 'wall_time'}
           for r in run_files.read_jsonl(os.path.join(run_dir, name))]
          for name in (run_files.METRICS, run_files.TRAIN_LOG, run_files.EVENTS)]
  summary = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY))
  restored = checkpoint.restore(run_dir, template)
  return (logs, {k: v for k, v in summary.items() if k not in ('wall_time', 'compiles')},
          restored.step, [np.asarray(x).tobytes() for x in jax.tree.leaves(restored.state)])


@pytest.fixture(scope='module')
def finished_run(digits_data_dir, tmp_path_factory) -> str:
  """A finished 4-epoch run (B = 64 for 2 epochs, then 128): 22 + 22 + 11 + 11 updates."""
  run_dir = str(tmp_path_factory.mktemp('finished') / 'run')
  _train(_loop_config(digits_data_dir, 4), run_dir)
  return run_dir


def _copy(finished_run: str, tmp_path) -> str:
  shutil.copytree(finished_run, tmp_path / 'run')
  return str(tmp_path / 'run')


@pytest.mark.slow
def test_an_agreeing_extension_ends_as_a_fresh_run_of_the_new_config(
    finished_run, digits_data_dir, tmp_path):
  extended, fresh = _copy(finished_run, tmp_path), str(tmp_path / 'fresh')
  summary = _train(_loop_config(digits_data_dir, 6), extended)
  _train(_loop_config(digits_data_dir, 6), fresh)
  assert summary['updates'] == 22 + 22 + 4 * 11 and summary['epochs'] == 6
  setup = prepare_run(_loop_config(digits_data_dir, 6))
  template = init_train_state(setup.model, setup.tx, 0, setup.spec.image_shape)
  assert _record(extended, template) == _record(fresh, template)
  recorded = run_files.read_json(os.path.join(extended, run_files.METADATA))
  assert recorded['config']['num_epochs'] == 6
  assert [(r['update'], r['num_epochs']) for r in recorded['resumes']] == [
      (66, {'from': 4, 'to': 6})]


@pytest.mark.slow
def test_fewer_epochs_for_a_finished_run_are_refused_with_every_file_unchanged(
    finished_run, digits_data_dir, tmp_path):
  run_dir = _copy(finished_run, tmp_path)
  before = _tree(run_dir)
  with pytest.raises(ConfigError, match=r'num_epochs 4 -> 3 would relabel its 66 updates done: '
                                        r'the new plan has 55 updates in all; rerun with '
                                        r'--restart'):
    _train(_loop_config(digits_data_dir, 3), run_dir)
  assert _tree(run_dir) == before


@pytest.mark.slow
def test_a_finished_run_run_again_trains_nothing_and_rewrites_nothing(
    finished_run, digits_data_dir, tmp_path, capsys):
  run_dir = _copy(finished_run, tmp_path)
  before = _tree(run_dir)
  summary = _train(_loop_config(digits_data_dir, 4), run_dir)
  assert summary == run_files.read_json(os.path.join(finished_run, run_files.SUMMARY))
  assert _tree(run_dir) == before
  assert ('after 66 updates; it ended earlier, its record stands'
          in capsys.readouterr().err)


@pytest.mark.parametrize('damage', ['deleted', 'emptied', 'cut'])
@pytest.mark.parametrize('finished', [True, False], ids=['finished', 'mid_run'])
@pytest.mark.slow
def test_a_damaged_metrics_log_is_refused_with_every_file_unchanged(
    damage, finished, finished_run, digits_data_dir, tmp_path):
  run_dir = _copy(finished_run, tmp_path)
  if not finished:  # as if killed after the checkpoint of epoch 2
    for step in run_files.checkpoint_steps(run_dir)[2:]:
      shutil.rmtree(os.path.join(run_dir, run_files.CHECKPOINTS, str(step)))
  metrics = os.path.join(run_dir, run_files.METRICS)
  if damage == 'deleted':
    os.remove(metrics)
  else:
    lines = open(metrics).readlines()
    open(metrics, 'w').writelines(lines[:1] if damage == 'cut' else [])
  before = _tree(run_dir)
  with pytest.raises(ConfigError) as error:
    _train(_loop_config(digits_data_dir, 4), run_dir)
  counted, update = (4, 66) if finished else (2, 44)
  held = 1 if damage == 'cut' else 0
  assert str(error.value) == (
      f'{metrics} holds {held} of the {counted} records its checkpoint of update {update} '
      f'counted: the log was deleted or cut after it was written; {resume.RESTART}')
  assert _tree(run_dir) == before


# --- launch.py killed (kill -9) at many moments, then the same command to the end ----------


def _after_seconds(seconds: float, start: Callable[[str], bool]) -> Callable[[str], bool]:
  """True ``seconds`` after ``start`` first held."""
  began: list[float] = []

  def due(run_dir: str) -> bool:
    if not began and start(run_dir):
      began.append(time.monotonic())
    return bool(began) and time.monotonic() - began[0] >= seconds
  return due


PHASE_END_UPDATE = 20 * UPDATES_PER_EPOCH  # epoch 20: the LR ÷ 4 from the next update
LAST_LOG_BEFORE_EVAL = (24 * UPDATES_PER_EPOCH) // LOG_EVERY * LOG_EVERY  # 5 updates before epoch 24's evaluation

KILL_MOMENTS: dict[str, Callable[[], Callable[[str], bool]]] = {
    # The lock file is taken before anything else of the run is written.
    'right_after_the_lock_is_taken': lambda: lambda d: os.path.exists(os.path.join(d, 'lock.json')),
    # Logs written, no checkpoint yet: the rerun starts afresh over the old logs.
    'after_the_first_metrics_line': lambda: lambda d: len(log_lines(os.path.join(d, run_files.METRICS))) >= 1,
    # Somewhere mid-epoch, 1 s into training.
    'one_second_into_training': lambda: _after_seconds(
        1.0, lambda d: os.path.exists(os.path.join(d, run_files.TRAIN_LOG)) and last_update(d) > 0),
    # Orbax's temporary step directory exists: the third checkpoint is being written.
    'while_a_checkpoint_is_being_saved': lambda: lambda d: len(committed_steps(d)) >= 2 and saving_checkpoint(d),
    # The checkpoint at the end of phase 2 committed, phase 3 (LR ÷ 4) about to start.
    'at_a_phase_boundary': lambda: lambda d: PHASE_END_UPDATE in committed_steps(d),
    # The last train-log line of epoch 24 written: 5 updates, then its evaluation.
    'around_an_evaluation': lambda: lambda d: last_update(d) >= LAST_LOG_BEFORE_EVAL,
    # summary.json written, the lock not yet released, the table not yet drawn.
    'after_the_summary_is_written': lambda: lambda d: os.path.exists(os.path.join(d, run_files.SUMMARY)),
}


@pytest.mark.slow
@pytest.mark.parametrize('moment', list(KILL_MOMENTS))
def test_a_run_killed_at_any_moment_resumes_to_the_uninterrupted_result(
    moment, launcher, reference_results, decay_state_template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  process = launcher.start(args, str(tmp_path / 'killed'))
  due = KILL_MOMENTS[moment]()
  process.wait_for(lambda: due(run_dir), moment.replace('_', ' '))
  process.kill()
  print(f'killed {moment}: train log at update {last_update(run_dir)}, '
        f'{len(log_lines(os.path.join(run_dir, run_files.METRICS)))} evaluations, '
        f'checkpoints {checkpoint_steps(run_dir)}')
  if moment == 'while_a_checkpoint_is_being_saved':
    assert saving_checkpoint(run_dir), (
        f'the save had finished before the kill: {checkpoint_steps(run_dir)}')

  resumed = succeeded(launcher.run(args))
  assert 'unusable' not in resumed.stdout + resumed.stderr
  assert_clean(run_dir)
  assert_strict_json(workdir)
  assert_same_results(run_results(run_dir, decay_state_template), reference_results)


# --- launch.py: a run's record is append-only truth -----------------------------------------


def _rewind_to_previous_checkpoint(run_dir: str) -> int:
  """The run as if killed right after its previous checkpoint: the latest and the summary
  gone. Returns the update it resumes from."""
  previous, latest = committed_steps(run_dir)
  shutil.rmtree(os.path.join(run_dir, 'checkpoints', str(latest)))
  os.remove(os.path.join(run_dir, run_files.SUMMARY))
  return previous


@pytest.mark.slow
def test_fewer_epochs_for_a_finished_run_are_refused_in_one_line_with_every_file_unchanged(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = copy_reference(reference_workdir, workdir)
  line = refused_in_one_line(
      launcher, launcher.args(workdir, f'--config.num_epochs={EPOCHS - 1}'), workdir)
  assert '--restart' in line, line
  assert line.startswith(f'launch.py: error: run_dir {run_dir}: num_epochs {EPOCHS} -> '
                         f'{EPOCHS - 1} would relabel its {TOTAL_UPDATES:,} updates done: the '
                         f'new plan has {TOTAL_UPDATES - UPDATES_PER_EPOCH:,} updates in all'), line


@pytest.mark.slow
@pytest.mark.parametrize('damage', ['deleted', 'emptied'])
@pytest.mark.parametrize('finished', [True, False], ids=['finished', 'mid_run'])
def test_a_damaged_metrics_log_is_refused_in_one_line_with_every_file_unchanged(
    damage, finished, launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = copy_reference(reference_workdir, workdir)
  update = TOTAL_UPDATES if finished else _rewind_to_previous_checkpoint(run_dir)
  metrics = os.path.join(run_dir, run_files.METRICS)
  if damage == 'deleted':
    os.remove(metrics)
  else:
    open(metrics, 'w').close()
  line = refused_in_one_line(launcher, launcher.args(workdir), workdir)
  assert '--restart' in line, line
  assert line.startswith(f'launch.py: error: {metrics} holds 0 of the '
                         f'{update // UPDATES_PER_EPOCH} records its checkpoint of update '
                         f'{update:,} counted'), line


@pytest.mark.slow
def test_a_finished_run_run_again_leaves_its_directory_byte_identical(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = copy_reference(reference_workdir, workdir)
  before = tree_digest(run_dir)
  result = succeeded(launcher.run(launcher.args(workdir)))
  assert re.search(rf'^decay seed 0: test accuracy \S+ after {TOTAL_UPDATES} updates; it ended '
                   'earlier, its record stands$', result.stderr, re.M), result.stderr
  assert tree_digest(run_dir) == before  # the summary's compiles and wall time too


@pytest.mark.slow
def test_a_resume_on_another_device_count_is_recorded_in_a_record_of_its_own(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = copy_reference(reference_workdir, workdir)
  update = _rewind_to_previous_checkpoint(run_dir)
  started = run_files.read_json(os.path.join(run_dir, run_files.METADATA))
  two = Launcher(launcher.data_dir, dict(launcher.env,
                                         XLA_FLAGS='--xla_force_host_platform_device_count=2'))
  succeeded(two.run(launcher.args(workdir)))
  recorded = run_files.read_json(os.path.join(run_dir, run_files.METADATA))
  assert {k: v for k, v in recorded.items() if k != 'resumes'} == {
      k: v for k, v in started.items() if k != 'resumes'}  # where the run came from stays
  (resumed,) = recorded['resumes']
  assert resumed['update'] == update and resumed['devices']['device_count'] == 2
  assert started['devices']['device_count'] == 1


EXTEND_CONFIG = '''
import importlib.util
import ml_collections
from lr_study.study import select_variant
spec = importlib.util.spec_from_file_location('digits_study', {path!r})
digits_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(digits_study)

def get_config(arg=None):
  config = digits_study.get_config()
  config.num_epochs = 10  # a multiple of gradient_noise_every_epochs: an extension may go on
  config.variants = ml_collections.ConfigDict(dict(
      ramp=dict(batch_schedule=dict(name='linear_ramp', batch_size=8, final_batch_size=64,
                                    over=0.5)),
      steps=dict(batch_schedule=dict(name='multistep', batch_size=8, boundaries=(4,),
                                     factor=4))))
  return select_variant(config, arg)
'''


@pytest.fixture(scope='module')
def extend_config(tmp_path_factory) -> str:
  path = tmp_path_factory.mktemp('extend') / 'extend.py'
  path.write_text(EXTEND_CONFIG.format(path=os.path.join(ROOT, CONFIG)))
  return str(path)


@pytest.mark.slow
def test_a_batch_ramp_stretched_over_more_epochs_is_refused_with_every_file_unchanged(
    launcher, extend_config, tmp_path):
  workdir = str(tmp_path / 'workdir')
  succeeded(launcher.run(launcher.args(workdir, config=f'{extend_config}:ramp')))
  line = refused_in_one_line(launcher, launcher.args(workdir, '--config.num_epochs=20',
                                                     config=f'{extend_config}:ramp'), workdir)
  assert '--restart' in line, line
  assert 'num_epochs 10 -> 20 would relabel its ' in line, line
  assert 'the new plan changes the batch size of update ' in line, line


@pytest.mark.slow
def test_an_agreeing_extension_of_a_finished_run_ends_as_a_fresh_run_of_the_new_config(
    launcher, extend_config, decay_state_template, tmp_path):
  extended, fresh = str(tmp_path / 'extended'), str(tmp_path / 'fresh')
  config = f'{extend_config}:steps'
  succeeded(launcher.run(launcher.args(extended, config=config)))
  succeeded(launcher.run(launcher.args(extended, '--config.num_epochs=20', config=config)))
  succeeded(launcher.run(launcher.args(fresh, '--config.num_epochs=20', config=config)))
  run = os.path.join('steps', 'seed_0')
  got, want = (run_results(os.path.join(d, run), decay_state_template)
               for d in (extended, fresh))
  assert got.summary['epochs'] == 20 and got.summary['updates'] == 4 * 179 + 16 * 44
  assert_same_results(got, want)
  (record,) = run_files.read_json(os.path.join(extended, run, run_files.METADATA))['resumes']
  assert (record['update'], record['num_epochs']) == (4 * 179 + 6 * 44, {'from': 10, 'to': 20})
