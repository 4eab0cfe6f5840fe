"""lr_study where TensorFlow and TFDS are not installed (a GPU machine's or a Colab TPU
runtime's Python): launch.py in a subprocess whose every import finder finds neither.

The default study (shortened: one seed, 3 epochs, then resumed to 4) runs and resumes,
prints its table and writes checkpoints and TensorBoard events that ``EventAccumulator``
reads back; studies on an ``.npz`` and on MNIST's four files run; what needs TensorFlow
(a TFDS dataset, a URL workdir) is one line and exit status 2.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import once_per_run
from lr_study.data import local
from lr_study.runtime import run_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / 'shared' / 'data' / 'mnist'
VARIANTS = ('decay', 'hybrid', 'increase')
# The default study, one seed, its noise scale cut by 4 at epochs 1 and 2 instead of 10, 20, 30.
SHORT_STUDY = ('launch.py', '--config.seeds=0,',
               '--config.variants.decay.lr_schedule.boundaries=1,2',
               '--config.variants.hybrid.batch_schedule.boundaries=1,2',
               '--config.variants.increase.batch_schedule.boundaries=1,2',
               '--config.variants.increase.batch_schedule.factor=4,4',
               '--config.gradient_noise_every_epochs=1')
# sitecustomize.py on PYTHONPATH: tensorflow and tensorflow_datasets look uninstalled
# (find_spec gives None, import raises ModuleNotFoundError), as on a machine without them.
HIDE_TENSORFLOW = '''
import sys

HIDDEN = ('tensorflow', 'tensorflow_datasets')


class _Hiding:
  def __init__(self, finder):
    self._finder = finder

  def find_spec(self, name, path=None, target=None):
    find = getattr(self._finder, 'find_spec', None)
    if name.partition('.')[0] in HIDDEN or find is None:
      return None
    return find(name, path, target)

  def __getattr__(self, name):
    return getattr(self._finder, name)


sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
'''
CHECK_IMPORTS = '''
import importlib, importlib.util, json, pkgutil, sys
import lr_study
names = [m.name for m in pkgutil.walk_packages(lr_study.__path__, 'lr_study.')]
for name in names:
  if name != 'lr_study.data.digits':  # the TFDS builder of streamed digits
    importlib.import_module(name)
print(json.dumps({'version': lr_study.__version__, 'modules': len(names),
                  'found': [importlib.util.find_spec(m) is not None
                            for m in ('tensorflow', 'tensorflow_datasets')],
                  'imported': sorted(m for m in sys.modules if m.startswith('tensorflow'))}))
'''


@pytest.fixture(scope='module')
def env(tmp_path_factory) -> dict[str, str]:
  hide = tmp_path_factory.mktemp('hide_tensorflow')
  (hide / 'sitecustomize.py').write_text(HIDE_TENSORFLOW)
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one device, as a user's
  env['PYTHONPATH'] = str(hide)
  return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600)


def _metrics(run_dir: pathlib.Path) -> list[dict]:
  return run_files.read_jsonl(run_dir / run_files.METRICS)


@pytest.mark.slow
def test_lr_study_and_all_its_modules_import_without_tensorflow(env):
  result = _run(env, '-c', CHECK_IMPORTS)
  assert result.returncode == 0, result.stderr
  shown = json.loads(result.stdout)
  assert shown['found'] == [False, False] and shown['imported'] == []
  assert shown['modules'] > 50


@pytest.fixture(scope='module')
def study(env, tmp_path_factory) -> dict:
  """The short default study run for 3 epochs, then resumed to 4, once per test run."""

  def run(workdir: str) -> dict:
    first = _run(env, *SHORT_STUDY, '--config.num_epochs=3', f'--workdir={workdir}')
    assert first.returncode == 0, first.stderr[-3000:]
    before = {v: _metrics(pathlib.Path(workdir, v, 'seed_0')) for v in VARIANTS}
    resumed = _run(env, *SHORT_STUDY, '--config.num_epochs=4', f'--workdir={workdir}')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return dict(workdir=workdir, stdout=first.stdout, before=before)

  done = once_per_run(tmp_path_factory, 'without_tensorflow', run)
  workdir = pathlib.Path(done['workdir'])
  return dict(done, workdir=workdir, runs={v: workdir / v / 'seed_0' for v in VARIANTS})


@pytest.mark.slow
def test_the_default_study_runs_and_prints_its_table(study):
  table = (study['workdir'] / 'table.md').read_text()
  for variant in VARIANTS:
    assert f'| {variant} |' in study['stdout'] and f'| {variant} |' in table
    assert len(study['before'][variant]) == 3
    assert sorted(os.listdir(study['runs'][variant] / run_files.CHECKPOINTS))


@pytest.mark.slow
def test_it_resumes_from_its_checkpoints(study):
  for variant, run_dir in study['runs'].items():
    metrics, before = _metrics(run_dir), study['before'][variant]
    assert len(metrics) == 4 and metrics[:3] == before
    (resume,) = run_files.read_json(run_dir / run_files.METADATA)['resumes']
    assert resume['update'] == before[-1]['update']
    assert resume['num_epochs'] == {'from': 3, 'to': 4}
    steps = sorted(int(s) for s in os.listdir(run_dir / run_files.CHECKPOINTS))
    assert steps[-1] == metrics[-1]['update']


@pytest.mark.slow
def test_tensorboard_reads_back_the_events_of_both_sessions(study):
  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import plugin_event_accumulator as pea
  from tensorboard.plugins.hparams import metadata
  from tensorboard.util import tensor_util
  for variant, run_dir in study['runs'].items():
    assert len(glob.glob(str(run_dir / 'events.out.tfevents.*'))) == 2
    accumulator = pea.EventAccumulator(str(run_dir), size_guidance={pea.TENSORS: 0})
    accumulator.Reload()
    metrics = _metrics(run_dir)
    for tag in ('test_accuracy', 'learning_rate', 'batch_size'):
      events = accumulator.Tensors(tag)
      assert [e.step for e in events] == [r['update'] for r in metrics], tag
      np.testing.assert_allclose([float(tensor_util.make_ndarray(e.tensor_proto))
                                  for e in events], [r[tag] for r in metrics], rtol=1e-6)
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)[
        metadata.SESSION_START_INFO_TAG]
    hparams = metadata.parse_session_start_info_plugin_data(content).hparams
    assert hparams['variant'].string_value == variant


@pytest.mark.slow
@pytest.mark.parametrize('data', ['arrays', 'mnist'])
def test_a_study_on_an_npz_file_or_mnist_files_runs(env, tmp_path, data):
  if data == 'arrays':
    digits = local.digits()
    path = tmp_path / 'digits.npz'
    np.savez(path, x_train=digits['train'][0], y_train=digits['train'][1],
             x_test=digits['test'][0], y_test=digits['test'][1])
    dataset, batch, examples = [f'--config.dataset.manual_dir={path}'], 32, 1437
  else:
    if not MNIST_DIR.is_dir():
      pytest.skip(f'the shared MNIST files are not here: {MNIST_DIR} is absent')
    dataset, batch, examples = [f'--config.dataset.manual_dir={MNIST_DIR}',
                                '--config.dataset.eval_batch_size=2000'], 500, 60000
  workdir = tmp_path / 'study'
  result = _run(env, 'launch.py', '--config=experiments/digits_study.py:decay',
                '--config.seeds=0,', '--config.num_epochs=1',
                '--config.variants.decay.lr_schedule.boundaries=0.5,',
                f'--config.variants.decay.batch_schedule.batch_size={batch}',
                f'--config.dataset.name={data}', *dataset, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  (record,) = _metrics(workdir / 'decay' / 'seed_0')
  assert record['update'] == examples // batch and record['test_accuracy'] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize('flag, line', [
    ('--config.dataset.name=cifar10',
     "dataset 'cifar10' needs TensorFlow Datasets, which does not import here (No module "
     "named 'tensorflow'): pip install \"lr_study[tfds]\", or save it as an .npz file for "
     "dataset.name='arrays'"),
    ('--workdir=ram://study', 'a URL path (gs://, ram://) needs TensorFlow, which does not '
                              "import here (No module named 'tensorflow')"),
])
def test_what_needs_tensorflow_is_one_line_and_exit_status_2(env, tmp_path, flag, line):
  workdir = tmp_path / 'study'
  args = [flag] if flag.startswith('--workdir') else [flag, f'--workdir={workdir}']
  result = _run(env, *SHORT_STUDY, '--config.num_epochs=3', *args)
  assert result.returncode == 2, result.stderr[-3000:]
  (printed,) = result.stderr.strip().splitlines()
  assert printed.startswith(f'launch.py: error: {line}')
  assert not workdir.exists()
