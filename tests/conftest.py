"""Test setup: one CPU device, the ``multidevice`` tests apart (``tests/tiers.py``); XLA's
backend optimizations off and one compilation cache for the session's processes, since
compiling dominates these small models; and no network for any test."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

import tiers

# Before jax is imported anywhere; the tests' subprocesses inherit them. A test that needs
# XLA's optimized code is marked `optimized`.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
_OWN_CACHE = 'JAX_COMPILATION_CACHE_DIR' not in os.environ
if _OWN_CACHE:  # every compile saved, each later one of the same program read back
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='lr_study_tests_jax_cache_')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'
_COUNTS = os.environ.pop(tiers.COUNTS_ENV, None)  # this run's, not its subprocesses'


# A test of what differs between one device and several: once in each pytest run of
# make test, with its `device_count` the run's.
ON_ONE_AND_EIGHT_DEVICES = pytest.mark.parametrize(
    'device_count', [1, pytest.param(tiers.MULTIDEVICE, marks=pytest.mark.multidevice)],
    ids=['1_device', f'{tiers.MULTIDEVICE}_devices'])


def pytest_collection_modifyitems(config, items):
  """Skips the `multidevice` tests where XLA_FLAGS does not give them their devices."""
  del config
  if tiers.forced_device_count(os.environ.get('XLA_FLAGS', '')) == tiers.MULTIDEVICE:
    return
  skip = pytest.mark.skip(reason=f'needs {tiers.MULTIDEVICE} CPU devices: run it with '
                                 f'XLA_FLAGS={tiers.MULTIDEVICE_FLAGS} (make test does)')
  for item in items:
    if 'multidevice' in item.keywords:
      item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
  """Adds this run's count to make test's total (tests/tiers.py); removes the cache."""
  del exitstatus
  reporter = session.config.pluginmanager.get_plugin('terminalreporter')
  if _COUNTS and reporter is not None:
    tiers.add_counts(_COUNTS, session.testscollected, reporter.stats)
  if _OWN_CACHE:
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)


@pytest.fixture(autouse=True)
def _optimized(request, monkeypatch):
  """XLA's optimizations on for a test marked `optimized`, its subprocesses included."""
  if 'optimized' not in request.keywords:
    yield
    return
  import jax  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('JAX_DISABLE_MOST_OPTIMIZATIONS', '0')
  before = jax.config.values['jax_disable_most_optimizations']
  jax.config.update('jax_disable_most_optimizations', False)
  yield
  jax.config.update('jax_disable_most_optimizations', before)


LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')


def _is_remote(host: object) -> bool:
  """A host name or address outside this machine (a path is a Unix socket: local)."""
  if isinstance(host, bytes):
    host = host.decode()
  return isinstance(host, str) and host not in LOCAL_HOSTS and '/' not in host


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
  """Resolving a remote name or connecting to a remote address fails the test at once."""

  def refuse(what: object) -> None:
    raise RuntimeError(f'test tried to reach the network: {what!r}')

  def guard(method):
    def guarded(self, address):
      if _is_remote(address[0] if isinstance(address, tuple) else address):
        refuse(address)
      return method(self, address)
    return guarded

  real_getaddrinfo = socket.getaddrinfo

  def guarded_getaddrinfo(host, *args, **kwargs):
    if _is_remote(host):
      refuse(host)
    return real_getaddrinfo(host, *args, **kwargs)

  monkeypatch.setattr(socket.socket, 'connect', guard(socket.socket.connect))
  monkeypatch.setattr(socket.socket, 'connect_ex', guard(socket.socket.connect_ex))
  monkeypatch.setattr(socket, 'getaddrinfo', guarded_getaddrinfo)


@pytest.fixture(scope='session')
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
  """A TFDS data_dir holding the prepared embedded digits, made once per test session."""
  from lr_study.data.sources import prepare_dataset  # pylint: disable=g-import-not-at-top
  from lr_study.config import dataset_defaults  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.getbasetemp() / 'tfds_digits')
  prepare_dataset(dataset_defaults('digits', data_dir=data_dir))
  return data_dir


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch_on_one_device(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  """``python launch.py ARGS`` in the repository root on one CPU device, as a user runs it."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _default_study(data_dir: str, workdir: str, *args: str) -> subprocess.CompletedProcess:
  result = launch_on_one_device('--config.seeds=0,', f'--config.dataset.data_dir={data_dir}',
                                f'--workdir={workdir}', *args)
  assert result.returncode == 0, result.stderr[-2000:]
  return result


@pytest.fixture(scope='session')
def default_study(digits_data_dir, tmp_path_factory):
  """``python launch.py``, the default study, with seed 0: (its result, its workdir)."""
  workdir = tmp_path_factory.mktemp('default_study')
  return _default_study(digits_data_dir, str(workdir)), workdir


@pytest.fixture(scope='session')
def default_study_update_by_update(digits_data_dir, tmp_path_factory):
  """The default study with seed 0, one update per dispatch and a train-log line after
  each update: (its result, its workdir)."""
  workdir = tmp_path_factory.mktemp('default_study_update_by_update')
  return _default_study(digits_data_dir, str(workdir), '--config.updates_per_dispatch=1',
                        '--config.train_log_every_updates=1'), workdir


class StopAfter:
  """A preemption (``lr_study.runtime.preemption.Preemption``) requested after the loop's
  ``n``-th dispatch, as a SIGTERM arriving during it."""

  def __init__(self, n: int):
    self.n, self.dispatches = n, 0

  def reached(self) -> bool:
    self.dispatches += 1
    return self.dispatches >= self.n


@pytest.fixture
def stop_after() -> type[StopAfter]:
  return StopAfter


def digits_run_config(data_dir: str, **overrides):
  """A one-run config on the embedded digits, small enough to train in seconds; the
  tests override what they study."""
  from lr_study import config as schema  # pylint: disable=g-import-not-at-top
  config = schema.get_config()
  del config['variants'], config['run_variants']
  config.update(dict(
      variant='test',
      dataset=schema.dataset_defaults('digits', data_dir=data_dir, eval_batch_size=128),
      model=dict(name='mlp', widths=(32,), batch_norm=False, dropout=0.0),
      optimizer=dict(name='momentum', momentum=0.9, weight_decay=0.0),
      lr_schedule=dict(name='multistep', init_value=0.05, boundaries=(3,), factors=0.2),
      batch_schedule=dict(name='multistep', batch_size=64, boundaries=(2, 4), factor=2),
      num_epochs=6, checkpoints_to_keep=10))
  with config.ignore_type():
    for key, value in overrides.items():
      config[key] = value
  return config
