"""lr_study.runtime.resume: a run goes on only where its record stays true, and says in one
line why not otherwise; lr_study.runtime.metadata: each resume is recorded."""

from __future__ import annotations

import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from conftest import digits_run_config
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
