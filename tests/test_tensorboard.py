"""TensorBoard events of a real (short) study on the embedded digits, read back the way
TensorBoard reads them: every evaluation's metrics at step = its update, the run's
hyperparameters through the HParams plugin, one event directory per run, and a resumed
run that ends with exactly the evaluations of its metrics.jsonl."""

from __future__ import annotations

import glob
import os
import shutil

import ml_collections
import numpy as np
import pytest

from lr_study import config as schema
from lr_study.runtime import run_files
from lr_study.study import decay_vs_batch_variants

import lr_study

VARIANTS = ('decay', 'increase')
SEEDS = (0, 1)
EPOCHS = 3
SCALARS = ('test_accuracy', 'test_loss', 'train_loss', 'train_accuracy', 'learning_rate',
           'batch_size', 'epoch', 'examples_seen', 'noise_scale')


def _study(data_dir: str) -> ml_collections.ConfigDict:
  config = schema.get_config()
  config.seeds = SEEDS
  config.dataset = schema.dataset_defaults('digits', data_dir=data_dir, eval_batch_size=360)
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=(32,), batch_norm=False,
                                                dropout=0.0))
  config.batch_size = 64
  config.num_epochs = EPOCHS
  config.checkpoints_to_keep = 10
  config.variants = decay_vs_batch_variants(config, (1, 2), 2, hybrid_factor=2)
  config.run_variants = VARIANTS
  return config


def _run_dirs(workdir: str) -> dict[tuple[str, int], str]:
  return {(v, s): os.path.join(workdir, v, f'seed_{s}') for v in VARIANTS for s in SEEDS}


def _accumulator(run_dir: str):
  """The run's events as TensorBoard's own loader keeps them (every one: no sampling)."""
  from tensorboard.backend.event_processing import plugin_event_accumulator as pea  # pylint: disable=g-import-not-at-top
  acc = pea.EventAccumulator(run_dir, size_guidance={pea.TENSORS: 0})
  acc.Reload()
  return acc


def _scalar(acc, tag: str) -> list[tuple[int, float]]:
  """(step, value) of a tf.summary.scalar tag (TF2 writes scalars as tensors)."""
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def _hparams(acc) -> dict:
  """The run's hyperparameters from the HParams plugin's session start info."""
  from tensorboard.plugins.hparams import metadata  # pylint: disable=g-import-not-at-top
  content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
  info = metadata.parse_session_start_info_plugin_data(content)
  out = {}
  for key, value in info.hparams.items():
    kind = value.WhichOneof('kind')
    out[key] = getattr(value, kind)
  return out


@pytest.fixture(scope='module')
def study(digits_data_dir, tmp_path_factory) -> str:
  workdir = str(tmp_path_factory.mktemp('tensorboard') / 'study')
  lr_study.run(_study(digits_data_dir), workdir)
  return workdir


def _assert_events_match_metrics(run_dir: str) -> None:
  metrics = run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))
  assert len(metrics) == EPOCHS
  acc = _accumulator(run_dir)
  for tag in SCALARS:
    events = _scalar(acc, tag)
    assert [step for step, _ in events] == [r['update'] for r in metrics], tag
    np.testing.assert_allclose([value for _, value in events], [r[tag] for r in metrics],
                               rtol=1e-6, err_msg=tag)


@pytest.mark.slow
def test_every_run_has_its_own_event_file_with_test_accuracy_at_each_evaluation(study):
  for run_dir in _run_dirs(study).values():
    assert glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))
    _assert_events_match_metrics(run_dir)


@pytest.mark.slow
def test_tensorboard_sees_each_run_by_variant_and_seed(study):
  from tensorboard.backend.event_processing import plugin_event_multiplexer as pem  # pylint: disable=g-import-not-at-top
  multiplexer = pem.EventMultiplexer().AddRunsFromDirectory(study)
  multiplexer.Reload()
  assert set(multiplexer.Runs()) == {f'{v}/seed_{s}' for v in VARIANTS for s in SEEDS}


@pytest.mark.slow
def test_hyperparameters_are_the_run_config_through_the_hparams_plugin(study):
  for (variant, seed), run_dir in _run_dirs(study).items():
    hparams = _hparams(_accumulator(run_dir))
    config = run_files.read_json(os.path.join(run_dir, run_files.METADATA))['config']
    assert hparams['variant'] == variant
    assert hparams['num_epochs'] == EPOCHS
    assert hparams['dataset.name'] == 'digits'
    assert hparams['model.widths'] == '(32,)'
    assert hparams['lr_schedule.name'] == config['lr_schedule']['name']
    assert hparams['batch_schedule.name'] == config['batch_schedule']['name']
    assert hparams['batch_schedule.batch_size'] == 64
    assert hparams['lr_schedule.init_value'] == pytest.approx(config['learning_rate'])
    assert hparams['optimizer.momentum'] == pytest.approx(0.9)
    assert all(isinstance(value, (str, float, bool)) for value in hparams.values())
    # The seed distinguishes the runs of one variant; the session's own scalar says it.
    assert {value for _, value in _scalar(_accumulator(run_dir), 'seed')} == {seed}


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_evaluations_of_its_metrics_log(study, tmp_path):
  """A run resumed from an older checkpoint logs its later evaluations again; TensorBoard
  keeps the newest of each step, which are the metrics.jsonl values, none twice."""
  workdir = str(tmp_path / 'study')
  shutil.copytree(study, workdir)
  run_dir = _run_dirs(workdir)[('decay', 0)]
  first = run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))[0]['update']
  for step in os.listdir(os.path.join(run_dir, 'checkpoints')):
    if int(step) > first:
      shutil.rmtree(os.path.join(run_dir, 'checkpoints', step))
  os.remove(os.path.join(run_dir, run_files.SUMMARY))
  lr_study.run(_study(run_files.read_json(os.path.join(run_dir, run_files.METADATA))
                      ['config']['dataset']['data_dir']), workdir)
  assert len(glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))) == 2
  for path in _run_dirs(workdir).values():
    _assert_events_match_metrics(path)


@pytest.mark.parametrize('start_step', [None, 20])
def test_a_restarted_session_supersedes_the_older_events_from_its_step(tmp_path, start_step):
  """Two sessions in one directory, the second restarting at step 20 with new values:
  TensorBoard shows steps 10, 20, 30 once each, 20 and 30 from the second session,
  whether the restart step is given or taken from the first evaluation."""
  from lr_study.runtime.tensorboard import EventWriter  # pylint: disable=g-import-not-at-top
  path = str(tmp_path)
  first = EventWriter(path, {'variant': 'a'})
  for step in (10, 20, 30):
    first.scalars(step, {'test_accuracy': step / 100})
  first.close()
  second = EventWriter(path, {'variant': 'a'}, start_step=start_step)
  for step in (20, 30):
    second.scalars(step, {'test_accuracy': step / 100 + 0.5})
  second.close()
  steps, values = zip(*_scalar(_accumulator(path), 'test_accuracy'))
  assert steps == (10, 20, 30) and values == pytest.approx((0.1, 0.7, 0.8))
  assert _hparams(_accumulator(path)) == {'variant': 'a'}


def test_a_finished_run_reopened_keeps_every_event(tmp_path):
  from lr_study.runtime.tensorboard import EventWriter  # pylint: disable=g-import-not-at-top
  path = str(tmp_path)
  writer = EventWriter(path, {'variant': 'a'})
  for step in (10, 20):
    writer.scalars(step, {'test_accuracy': step / 100})
  writer.close()
  EventWriter(path, {'variant': 'a'}).close()  # resumed at its end: nothing to log
  steps, values = zip(*_scalar(_accumulator(path), 'test_accuracy'))
  assert steps == (10, 20) and values == pytest.approx((0.1, 0.2))


def test_numpy_numbers_are_scalars_too_and_bools_and_text_are_not(tmp_path):
  from lr_study.runtime.tensorboard import EventWriter  # pylint: disable=g-import-not-at-top
  writer = EventWriter(str(tmp_path), {'variant': 'a'})
  writer.scalars(np.int64(7), {'update': np.int64(7), 'examples_seen': np.int32(56),
                               'learning_rate': np.float32(0.05), 'test_loss': float('nan'),
                               'variant': 'a', 'diverged': False, 'flag': np.bool_(True)})
  writer.close()
  acc = _accumulator(str(tmp_path))
  assert set(acc.Tags()['tensors']) - {'_hparams_/session_start_info'} == {
      'update', 'examples_seen', 'learning_rate'}
  assert _scalar(acc, 'examples_seen') == [(7, 56.0)]
