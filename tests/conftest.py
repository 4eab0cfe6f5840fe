"""Test setup: one CPU device, the ``multidevice`` tests apart (``tests/tiers.py``); XLA's
backend optimizations off and one compilation cache for the session's processes, since
compiling dominates these small models; no network for any test; and the helpers the
tests share, among them the harness of real ``launch.py`` runs held against an
uninterrupted reference run (at the end of this file)."""

import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np
import pytest

from lr_study.runtime import run_files
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


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str,
                 make: Callable[[str], Any]) -> Any:
  """What ``make(path)`` returns (JSON), made once per pytest run however many pytest-xdist
  workers share it (``make test``'s ``-n``): the first to get here makes ``path`` under a
  file lock, the others wait and read its record."""
  root = tmp_path_factory.getbasetemp()
  if 'PYTEST_XDIST_WORKER' in os.environ:
    root = root.parent  # the run's, above each worker's own
  record = root / f'{name}.json'
  with open(root / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not record.exists():
      record.write_text(json.dumps(make(str(root / name))))
  return json.loads(record.read_text())


@pytest.fixture(scope='session')
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
  """A TFDS data_dir holding the prepared embedded digits, made once per test run."""
  from lr_study.data.sources import prepare_dataset  # pylint: disable=g-import-not-at-top
  from lr_study.config import dataset_defaults  # pylint: disable=g-import-not-at-top

  def prepare(data_dir: str) -> str:
    prepare_dataset(dataset_defaults('digits', data_dir=data_dir))
    return data_dir
  return once_per_run(tmp_path_factory, 'tfds_digits', prepare)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch_on_one_device(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  """``python launch.py ARGS`` in the repository root on one CPU device, as a user runs it."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


RESULT_FIELDS = ('args', 'returncode', 'stdout', 'stderr')  # of a CompletedProcess, as JSON


def _default_study(tmp_path_factory: pytest.TempPathFactory, name: str, data_dir: str,
                   *args: str) -> tuple[subprocess.CompletedProcess, pathlib.Path]:
  """The default study with seed 0 and ``args``, run once per test run: (its result, its
  workdir)."""
  def run(workdir: str) -> dict[str, Any]:
    result = launch_on_one_device('--config.seeds=0,', f'--config.dataset.data_dir={data_dir}',
                                  f'--workdir={workdir}', *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return {'workdir': workdir, **{k: getattr(result, k) for k in RESULT_FIELDS}}
  done = once_per_run(tmp_path_factory, name, run)
  return (subprocess.CompletedProcess(**{k: done[k] for k in RESULT_FIELDS}),
          pathlib.Path(done['workdir']))


@pytest.fixture(scope='session')
def default_study(digits_data_dir, tmp_path_factory):
  """``python launch.py``, the default study, with seed 0: (its result, its workdir)."""
  return _default_study(tmp_path_factory, 'default_study', digits_data_dir)


@pytest.fixture(scope='session')
def default_study_update_by_update(digits_data_dir, tmp_path_factory):
  """The default study with seed 0, one update per dispatch and a train-log line after
  each update: (its result, its workdir)."""
  return _default_study(tmp_path_factory, 'default_study_update_by_update', digits_data_dir,
                        '--config.updates_per_dispatch=1', '--config.train_log_every_updates=1')


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


# --- launch.py runs held against an uninterrupted one ----------------------------------------
#
# The tests of runs killed, stopped, corrupted, refused and diverged (test_resume.py,
# test_checkpoint.py, test_lock.py, test_launch.py, ...) run ``python launch.py`` in a
# subprocess (repository root as cwd, one CPU device: ``XLA_FLAGS`` unset) on the embedded
# digits prepared once for the session. The reference is the default study's ``decay``
# variant, seed 0, 40 epochs (7,160 updates of B = 8; phases end at epochs 10, 20 and 30),
# with a train-log line every 7 updates (an epoch is 179 updates: the lines fall inside
# epochs) and a checkpoint every 5 epochs, run once per session (``reference_workdir``). An
# interrupted run, rerun with the same command to its end, must leave the same
# ``metrics.jsonl`` (without ``wall_time``), ``train_log.jsonl``, ``schedule_events.jsonl``,
# summary and final checkpoint (every array of the train state, compared exactly) as the
# reference. The subprocesses share a JAX compilation cache, which only saves compile time.

CONFIG = 'experiments/digits_study.py'
UPDATES_PER_EPOCH = 1437 // 8  # decay: B = 8 on the 1,437 training digits
EPOCHS = 40
TOTAL_UPDATES = EPOCHS * UPDATES_PER_EPOCH  # 7,160
LOG_EVERY = 7  # train-log lines (and dispatch cuts) at every 7th update, mostly mid-epoch
CHECKPOINT_EVERY = 5  # epochs; also at every phase end (10, 20, 30) and at the end
RUN = os.path.join('decay', 'seed_0')
TIMEOUT_S = 300  # any one subprocess
POLL_S = 0.002

# --- Launching ----------------------------------------------------------------------------


@dataclasses.dataclass
class Launcher:
  """``launch.py`` as a user runs it, with the test's dataset and environment."""

  data_dir: str
  env: dict[str, str]

  def args(self, workdir: str, *extra: str, config: str = f'{CONFIG}:decay',
           log_every: int = LOG_EVERY) -> list[str]:
    return [sys.executable, 'launch.py', f'--config={config}', '--config.seeds=0',
            f'--config.dataset.data_dir={self.data_dir}',
            f'--config.train_log_every_updates={log_every}',
            f'--config.checkpoint_every_epochs={CHECKPOINT_EVERY}', f'--workdir={workdir}',
            *extra]

  def run(self, args: list[str], timeout: int = TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=self.env, capture_output=True, text=True,
                          timeout=timeout)

  def start(self, args: list[str], log_dir: str) -> 'Process':
    os.makedirs(log_dir, exist_ok=True)
    out = open(os.path.join(log_dir, 'stdout'), 'w')
    err = open(os.path.join(log_dir, 'stderr'), 'w')
    # Ctrl-C as in a user's shell: a pytest-xdist worker ignores SIGINT, and a child inherits
    # that (its Python then installs no KeyboardInterrupt handler).
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
      proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=err)
    finally:
      signal.signal(signal.SIGINT, ignored)
    return Process(proc, out, err)


@dataclasses.dataclass
class Process:
  """A running ``launch.py`` whose output goes to files (no pipe to fill)."""

  proc: subprocess.Popen
  out: Any
  err: Any

  def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S
               ) -> None:
    """Polls ``condition`` every 2 ms; fails if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
      if self.proc.poll() is not None:
        pytest.fail(f'the run ended (status {self.proc.returncode}) before {what}:\n'
                    f'{self.output()[-3000:]}')
      if time.monotonic() > deadline:
        self.kill()
        pytest.fail(f'no {what} within {timeout} s')
      time.sleep(POLL_S)

  def kill(self) -> None:
    """kill -9, and reap it."""
    self.proc.kill()
    self.proc.wait(timeout=60)
    self.close()

  def wait(self, timeout: float = TIMEOUT_S) -> int:
    try:
      return self.proc.wait(timeout=timeout)
    finally:
      self.close()

  def close(self) -> None:
    self.out.close()
    self.err.close()

  def output(self) -> str:
    return self.stdout() + self.stderr()

  def stdout(self) -> str:
    with open(self.out.name) as f:
      return f.read()

  def stderr(self) -> str:
    with open(self.err.name) as f:
      return f.read()


@pytest.fixture(scope='session')
def launcher(digits_data_dir, tmp_path_factory) -> Launcher:
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # one CPU device, as a user runs it
  env.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp('jax_cache')),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return Launcher(digits_data_dir, env)


def one_line(text: str) -> str:
  lines = [line for line in text.splitlines() if line.strip()]
  assert len(lines) == 1, f'expected one line, got {len(lines)}:\n{text[-3000:]}'
  return lines[0]


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
  assert result.returncode == 0, result.stderr[-3000:]
  return result


# --- Reading a run ------------------------------------------------------------------------


def log_lines(path: str) -> list[str]:
  """The complete lines of a file being appended to ([] if absent)."""
  try:
    with open(path) as f:
      return f.read().split('\n')[:-1]
  except FileNotFoundError:
    return []


def last_record(path: str) -> dict[str, Any] | None:
  """The last complete JSON line of a growing log, read from its tail."""
  try:
    with open(path, 'rb') as f:
      start = max(0, f.seek(0, os.SEEK_END) - 4096)
      f.seek(start)
      lines = f.read().decode(errors='replace').split('\n')[:-1]  # the last one is torn
  except FileNotFoundError:
    return None
  if start:
    lines = lines[1:]  # the first is cut by the seek
  return json.loads(lines[-1]) if lines else None


def last_update(run_dir: str) -> int:
  record = last_record(os.path.join(run_dir, run_files.TRAIN_LOG))
  return record['update'] if record else 0


def checkpoint_steps(run_dir: str) -> list[str]:
  try:
    return sorted(os.listdir(os.path.join(run_dir, run_files.CHECKPOINTS)))
  except FileNotFoundError:
    return []


def committed_steps(run_dir: str) -> list[int]:
  return sorted(int(name) for name in checkpoint_steps(run_dir) if name.isdigit())


def saving_checkpoint(run_dir: str) -> bool:
  """Whether an orbax save is under way (or was killed): a temporary step directory."""
  return any('orbax-checkpoint-tmp' in name for name in checkpoint_steps(run_dir))


@dataclasses.dataclass
class Results:
  """What a finished run leaves, less what may differ between runs (wall times, the
  number of compiles of this process)."""

  metrics: list[dict[str, Any]]
  train_log: list[dict[str, Any]]
  events: list[dict[str, Any]]
  summary: dict[str, Any]
  step: int
  loop_state: dict[str, Any]
  state: Any


def without_keys(records: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
  return [{k: v for k, v in r.items() if k not in keys} for r in records]


def run_results(run_dir: str, template: Any) -> Results:
  from lr_study.training import checkpoint  # pylint: disable=g-import-not-at-top
  read = lambda name: run_files.read_jsonl(os.path.join(run_dir, name))
  summary = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY))
  restored = checkpoint.restore(run_dir, template)
  assert restored is not None and restored.skipped is None, restored and restored.skipped
  loop_state = json.loads(json.dumps(restored.loop_state))
  del loop_state['loop']['wall_time']
  return Results(metrics=without_keys(read(run_files.METRICS), 'wall_time'),
                 train_log=read(run_files.TRAIN_LOG), events=read(run_files.EVENTS),
                 summary={k: v for k, v in summary.items() if k not in ('wall_time', 'compiles')},
                 step=restored.step, loop_state=loop_state, state=restored.state)


def first_difference(a: list[Any], b: list[Any]) -> str:
  for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
      return f'record {i}: {x} != {y}'
  return f'{len(a)} records != {len(b)} records'


def assert_same_results(got: Results, want: Results, logs: tuple[str, ...] = (
    'metrics', 'train_log', 'events')) -> None:
  """``got`` equals ``want`` in every log (of ``logs``), the summary and every array of the
  final state."""
  import jax  # pylint: disable=g-import-not-at-top
  for name in logs:
    a, b = getattr(got, name), getattr(want, name)
    assert a == b, f'{name} differs: {first_difference(a, b)}'
  assert got.summary == want.summary
  assert (got.step, got.loop_state) == (want.step, want.loop_state)
  got_leaves, got_tree = jax.tree.flatten(got.state)
  want_leaves, want_tree = jax.tree.flatten(want.state)
  assert got_tree == want_tree
  for path_and_leaf, other in zip(jax.tree_util.tree_flatten_with_path(got.state)[0],
                                  want_leaves):
    path, leaf = path_and_leaf
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(other),
                                  err_msg=jax.tree_util.keystr(path))


def _refuse_constant(name: str) -> None:
  raise ValueError(f'not strict JSON: {name}')


def assert_strict_json(workdir: str) -> int:
  """Every JSON and JSON-lines file under ``workdir`` (and orbax's JSON metadata) parses
  as RFC 8259 JSON: no NaN, Infinity or -Infinity. Returns how many files it read."""
  checked = 0
  for directory, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(directory, name)
      if name.endswith('.jsonl'):
        texts = log_lines(path)
      elif name.endswith('.json') or name in ('_CHECKPOINT_METADATA', '_METADATA', 'metadata'):
        with open(path) as f:
          texts = [f.read()]
      else:
        continue
      for text in texts:
        try:
          json.loads(text, parse_constant=_refuse_constant)
        except ValueError as e:
          pytest.fail(f'{path}: {e}: {text[:200]}')
      checked += 1
  return checked


def assert_clean(run_dir: str) -> None:
  """A finished run leaves no lock, no half-written checkpoint, no temporary file."""
  assert not os.path.exists(os.path.join(run_dir, 'lock.json'))
  assert not saving_checkpoint(run_dir), checkpoint_steps(run_dir)
  assert committed_steps(run_dir)[-1] == TOTAL_UPDATES
  leftovers = [name for name in os.listdir(run_dir) if '.tmp-' in name]
  assert not leftovers, leftovers


def tree_digest(path: str) -> dict[str, str]:
  """Every file under ``path``: its SHA-256 by relative path (directories too)."""
  found = {}
  for directory, dirs, names in os.walk(path):
    for name in dirs:
      found[os.path.relpath(os.path.join(directory, name), path) + '/'] = 'dir'
    for name in names:
      full = os.path.join(directory, name)
      with open(full, 'rb') as f:
        found[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
  return found


def _experiment_config(variant: str) -> Any:
  from lr_study import study  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('digits_study', os.path.join(ROOT, CONFIG))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return study.resolve_variant(module.get_config(variant), variant)


@pytest.fixture(scope='session')
def decay_state_template(digits_data_dir) -> Any:
  """A fresh train state of the decay run, the shape its checkpoints restore into."""
  from lr_study.training.setup import prepare_run  # pylint: disable=g-import-not-at-top
  from lr_study.training.step import init_train_state  # pylint: disable=g-import-not-at-top
  config = _experiment_config('decay')
  config.dataset.data_dir = digits_data_dir
  setup = prepare_run(config)
  return init_train_state(setup.model, setup.tx, 0, setup.spec.image_shape)


@pytest.fixture(scope='session')
def reference_workdir(launcher, tmp_path_factory) -> str:
  """An uninterrupted run of the reference command, once per test run."""
  def run(workdir: str) -> str:
    succeeded(launcher.run(launcher.args(workdir)))
    return workdir
  return once_per_run(tmp_path_factory, 'reference', run)


@pytest.fixture(scope='session')
def reference_results(reference_workdir, decay_state_template) -> Results:
  run_dir = os.path.join(reference_workdir, RUN)
  assert_clean(run_dir)
  results = run_results(run_dir, decay_state_template)
  assert results.summary['status'] == 'finished'
  assert results.summary['updates'] == TOTAL_UPDATES == results.step
  assert len(results.metrics) == EPOCHS
  assert len(results.train_log) == TOTAL_UPDATES // LOG_EVERY
  assert committed_steps(run_dir) == [
      TOTAL_UPDATES - CHECKPOINT_EVERY * UPDATES_PER_EPOCH, TOTAL_UPDATES]
  return results


def copy_reference(reference_workdir: str, to: str) -> str:
  shutil.copytree(reference_workdir, to)
  return os.path.join(to, RUN)


def refused_in_one_line(launcher: Launcher, args: list[str], workdir: str | None = None) -> str:
  """Runs ``args``, which must stop with status 2 and one ``launch.py: error:`` line, every
  file under ``workdir`` (where given) unchanged. Returns the line."""
  before = tree_digest(workdir) if workdir else None
  result = launcher.run(args)
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
  line = one_line(result.stderr)
  assert line.startswith('launch.py: error: '), line
  if workdir:
    after = tree_digest(workdir)
    changed = sorted(path for path in {*before, *after} if before.get(path) != after.get(path))
    assert not changed, changed
  return line
