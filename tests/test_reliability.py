"""Runs you can trust: real ``launch.py`` processes killed, stopped, corrupted, refused and
diverged, each held against an uninterrupted run of the same command.

Every run here is ``python launch.py`` in a subprocess (repository root as cwd, one CPU
device: ``XLA_FLAGS`` unset) on the embedded digits prepared once for the session. The
reference is the default study's ``decay`` variant, seed 0, 40 epochs (7,160 updates of
B = 8; phases end at epochs 10, 20 and 30), with a train-log line every 7 updates (an
epoch is 179 updates: the lines fall inside epochs) and a checkpoint every 5 epochs. An
interrupted run, rerun with the same command to its end, must leave the same
``metrics.jsonl`` (without ``wall_time``), ``train_log.jsonl``, ``schedule_events.jsonl``,
summary and final checkpoint (every array of the train state, compared exactly) as the
reference. The subprocesses share a JAX compilation cache, which only saves compile time.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
import pytest

from lr_study import study
from lr_study.runtime import run_files
from lr_study.training import checkpoint, manual_lr
from lr_study.training.setup import prepare_run
from lr_study.training.step import init_train_state

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'experiments/digits_study.py'
UPDATES_PER_EPOCH = 1437 // 8  # decay: B = 8 on the 1,437 training digits
EPOCHS = 40
TOTAL_UPDATES = EPOCHS * UPDATES_PER_EPOCH  # 7,160
LOG_EVERY = 7  # train-log lines (and dispatch cuts) at every 7th update, mostly mid-epoch
CHECKPOINT_EVERY = 5  # epochs; also at every phase end (10, 20, 30) and at the end
RUN = os.path.join('decay', 'seed_0')
TIMEOUT_S = 300  # any one subprocess
POLL_S = 0.002
MANUAL_PROGRAM = 'python -m lr_study.training.manual_lr'


# --- Launching ------------------------------------------------------------------------------


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

  def start(self, args: list[str], log_dir: str) -> Process:
    os.makedirs(log_dir, exist_ok=True)
    out = open(os.path.join(log_dir, 'stdout'), 'w')
    err = open(os.path.join(log_dir, 'stderr'), 'w')
    proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=err)
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


@pytest.fixture(scope='module')
def launcher(digits_data_dir, tmp_path_factory) -> Launcher:
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # one CPU device, as a user runs it
  env.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp('jax_cache')),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return Launcher(digits_data_dir, env)


def _one_line(text: str) -> str:
  lines = [line for line in text.splitlines() if line.strip()]
  assert len(lines) == 1, f'expected one line, got {len(lines)}:\n{text[-3000:]}'
  return lines[0]


def _finished(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
  assert result.returncode == 0, result.stderr[-3000:]
  return result


# --- Reading a run ------------------------------------------------------------------------


def _lines(path: str) -> list[str]:
  """The complete lines of a file being appended to ([] if absent)."""
  try:
    with open(path) as f:
      return f.read().split('\n')[:-1]
  except FileNotFoundError:
    return []


def _last_record(path: str) -> dict[str, Any] | None:
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


def _last_update(run_dir: str) -> int:
  record = _last_record(os.path.join(run_dir, run_files.TRAIN_LOG))
  return record['update'] if record else 0


def _steps(run_dir: str) -> list[str]:
  try:
    return sorted(os.listdir(os.path.join(run_dir, run_files.CHECKPOINTS)))
  except FileNotFoundError:
    return []


def _committed(run_dir: str) -> list[int]:
  return sorted(int(name) for name in _steps(run_dir) if name.isdigit())


def _saving(run_dir: str) -> bool:
  """Whether an orbax save is under way (or was killed): a temporary step directory."""
  return any('orbax-checkpoint-tmp' in name for name in _steps(run_dir))


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


def _without(records: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
  return [{k: v for k, v in r.items() if k not in keys} for r in records]


def _results(run_dir: str, template: Any) -> Results:
  read = lambda name: run_files.read_jsonl(os.path.join(run_dir, name))
  summary = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY))
  restored = checkpoint.restore(run_dir, template)
  assert restored is not None and restored.skipped is None, restored and restored.skipped
  loop_state = json.loads(json.dumps(restored.loop_state))
  del loop_state['loop']['wall_time']
  return Results(metrics=_without(read(run_files.METRICS), 'wall_time'),
                 train_log=read(run_files.TRAIN_LOG), events=read(run_files.EVENTS),
                 summary={k: v for k, v in summary.items() if k not in ('wall_time', 'compiles')},
                 step=restored.step, loop_state=loop_state, state=restored.state)


def _first_difference(a: list[Any], b: list[Any]) -> str:
  for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
      return f'record {i}: {x} != {y}'
  return f'{len(a)} records != {len(b)} records'


def _assert_same(got: Results, want: Results, logs: tuple[str, ...] = (
    'metrics', 'train_log', 'events')) -> None:
  """``got`` equals ``want`` in every log (of ``logs``), the summary and every array of the
  final state."""
  for name in logs:
    a, b = getattr(got, name), getattr(want, name)
    assert a == b, f'{name} differs: {_first_difference(a, b)}'
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


def _assert_strict_json(workdir: str) -> int:
  """Every JSON and JSON-lines file under ``workdir`` (and orbax's JSON metadata) parses
  as RFC 8259 JSON: no NaN, Infinity or -Infinity. Returns how many files it read."""
  checked = 0
  for directory, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(directory, name)
      if name.endswith('.jsonl'):
        texts = _lines(path)
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


def _assert_clean(run_dir: str) -> None:
  """A finished run leaves no lock, no half-written checkpoint, no temporary file."""
  assert not os.path.exists(os.path.join(run_dir, 'lock.json'))
  assert not _saving(run_dir), _steps(run_dir)
  assert _committed(run_dir)[-1] == TOTAL_UPDATES
  leftovers = [name for name in os.listdir(run_dir) if '.tmp-' in name]
  assert not leftovers, leftovers


def _tree_digest(path: str) -> dict[str, str]:
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
  spec = importlib.util.spec_from_file_location('digits_study', os.path.join(ROOT, CONFIG))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return study.resolve_variant(module.get_config(variant), variant)


@pytest.fixture(scope='module')
def template(digits_data_dir) -> Any:
  """A fresh train state of the decay run, the shape its checkpoints restore into."""
  config = _experiment_config('decay')
  config.dataset.data_dir = digits_data_dir
  setup = prepare_run(config)
  return init_train_state(setup.model, setup.tx, 0, setup.spec.image_shape)


@pytest.fixture(scope='module')
def reference_workdir(launcher, tmp_path_factory) -> str:
  """An uninterrupted run of the reference command."""
  workdir = str(tmp_path_factory.mktemp('reference'))
  _finished(launcher.run(launcher.args(workdir)))
  return workdir


@pytest.fixture(scope='module')
def reference(reference_workdir, template) -> Results:
  run_dir = os.path.join(reference_workdir, RUN)
  _assert_clean(run_dir)
  results = _results(run_dir, template)
  assert results.summary['status'] == 'finished'
  assert results.summary['updates'] == TOTAL_UPDATES == results.step
  assert len(results.metrics) == EPOCHS
  assert len(results.train_log) == TOTAL_UPDATES // LOG_EVERY
  assert _committed(run_dir) == [TOTAL_UPDATES - CHECKPOINT_EVERY * UPDATES_PER_EPOCH,
                                 TOTAL_UPDATES]
  return results


def _copy_reference(reference_workdir: str, to: str) -> str:
  shutil.copytree(reference_workdir, to)
  return os.path.join(to, RUN)


# --- 1. kill -9 at many moments, then the same command to the end ---------------------------


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
    'after_the_first_metrics_line': lambda: lambda d: len(_lines(os.path.join(d, run_files.METRICS))) >= 1,
    # Somewhere mid-epoch, 1 s into training.
    'one_second_into_training': lambda: _after_seconds(
        1.0, lambda d: os.path.exists(os.path.join(d, run_files.TRAIN_LOG)) and _last_update(d) > 0),
    # Orbax's temporary step directory exists: the third checkpoint is being written.
    'while_a_checkpoint_is_being_saved': lambda: lambda d: len(_committed(d)) >= 2 and _saving(d),
    # The checkpoint at the end of phase 2 committed, phase 3 (LR ÷ 4) about to start.
    'at_a_phase_boundary': lambda: lambda d: PHASE_END_UPDATE in _committed(d),
    # The last train-log line of epoch 24 written: 5 updates, then its evaluation.
    'around_an_evaluation': lambda: lambda d: _last_update(d) >= LAST_LOG_BEFORE_EVAL,
    # summary.json written, the lock not yet released, the table not yet drawn.
    'after_the_summary_is_written': lambda: lambda d: os.path.exists(os.path.join(d, run_files.SUMMARY)),
}


@pytest.mark.parametrize('moment', list(KILL_MOMENTS))
def test_a_run_killed_at_any_moment_resumes_to_the_uninterrupted_result(
    moment, launcher, reference, template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  process = launcher.start(args, str(tmp_path / 'killed'))
  due = KILL_MOMENTS[moment]()
  process.wait_for(lambda: due(run_dir), moment.replace('_', ' '))
  process.kill()
  print(f'killed {moment}: train log at update {_last_update(run_dir)}, '
        f'{len(_lines(os.path.join(run_dir, run_files.METRICS)))} evaluations, '
        f'checkpoints {_steps(run_dir)}')
  if moment == 'while_a_checkpoint_is_being_saved':
    assert _saving(run_dir), f'the save had finished before the kill: {_steps(run_dir)}'

  resumed = _finished(launcher.run(args))
  assert 'unusable' not in resumed.stdout + resumed.stderr
  _assert_clean(run_dir)
  _assert_strict_json(workdir)
  _assert_same(_results(run_dir, template), reference)


# --- 2, 3. Corrupt checkpoints --------------------------------------------------------------


def _largest_array_file(step_dir: str) -> str:
  files = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(step_dir, 'state'))
           for n in names]
  return max(files, key=os.path.getsize)


def _truncate_arrays(step_dir: str) -> None:
  path = _largest_array_file(step_dir)
  os.truncate(path, os.path.getsize(path) // 2)


def _flip_a_bit_of_the_arrays(step_dir: str) -> None:
  path = _largest_array_file(step_dir)
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)[0]
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte ^ 0x08]))


def _garbage_loop_state(step_dir: str) -> None:
  path = os.path.join(step_dir, 'loop_state', 'metadata')
  size = os.path.getsize(path)
  with open(path, 'wb') as f:
    f.write(np.random.default_rng(0).bytes(size))


def _flip_a_digit_of_the_loop_state(step_dir: str) -> None:
  """Valid JSON still, with another update count: only the digest can tell."""
  path = os.path.join(step_dir, 'loop_state', 'metadata')
  with open(path) as f:
    text = f.read()
  changed = text.replace(f'"update": {TOTAL_UPDATES}', f'"update": {TOTAL_UPDATES + 1}')
  assert changed != text, text
  with open(path, 'w') as f:
    f.write(changed)


def _garbage_digest(step_dir: str) -> None:
  with open(os.path.join(step_dir, '_CHECKPOINT_METADATA'), 'wb') as f:
    f.write(b'{"custom_metadata": {"sha256": \x00\xff garbage')


def _dangling_symlink(step_dir: str) -> None:
  shutil.rmtree(step_dir)
  os.symlink(step_dir + '.gone', step_dir)


CORRUPTIONS = {
    'truncated_array_file': _truncate_arrays,
    'flipped_bit_in_the_arrays': _flip_a_bit_of_the_arrays,
    'garbage_loop_state': _garbage_loop_state,
    'loop_state_changed_but_valid_json': _flip_a_digit_of_the_loop_state,
    'garbage_checkpoint_metadata': _garbage_digest,
    'a_dangling_symlink_for_the_step': _dangling_symlink,  # replaced by the rerun's save
}


@pytest.mark.parametrize('corruption', list(CORRUPTIONS))
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    corruption, launcher, reference_workdir, reference, template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = _copy_reference(reference_workdir, workdir)
  previous, latest = _committed(run_dir)
  CORRUPTIONS[corruption](os.path.join(run_dir, 'checkpoints', str(latest)))

  result = _finished(launcher.run(launcher.args(workdir)))
  output = result.stdout + result.stderr
  named = [line for line in output.splitlines() if 'unusable' in line]
  assert len(named) == 1, output
  assert 'Traceback' not in output and not re.search(r'^[EWF]\d{4} ', output, re.M), output
  assert f'step {latest}' in named[0] and f'resumed from step {previous}' in named[0]
  _assert_clean(run_dir)
  _assert_strict_json(workdir)
  _assert_same(_results(run_dir, template), reference)


def test_every_checkpoint_corrupt_is_one_line_and_status_2_with_nothing_changed(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = _copy_reference(reference_workdir, workdir)
  previous, latest = _committed(run_dir)
  _truncate_arrays(os.path.join(run_dir, 'checkpoints', str(latest)))
  _garbage_loop_state(os.path.join(run_dir, 'checkpoints', str(previous)))
  before = _tree_digest(workdir)

  result = launcher.run(launcher.args(workdir))
  assert result.returncode == 2, result.stderr[-3000:]
  line = _one_line(result.stderr)
  assert line.startswith('launch.py: error: no usable checkpoint in ')
  assert f'step {latest}' in line and f'step {previous}' in line
  assert _tree_digest(workdir) == before


# --- 4. Resume under another config ---------------------------------------------------------


@pytest.mark.parametrize('override, key', [
    ('--config.learning_rate=0.5', 'learning_rate'),
    ('--config.optimizer.momentum=0.5', 'optimizer.momentum'),
    ('--config.model.widths=64,64', 'model.widths'),
])
def test_resume_with_a_changed_config_is_refused_naming_the_key_and_changes_nothing(
    override, key, launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  _copy_reference(reference_workdir, workdir)
  before = _tree_digest(workdir)
  result = launcher.run(launcher.args(workdir, override))
  assert result.returncode == 2, result.stderr[-3000:]
  line = _one_line(result.stderr)
  assert line.startswith('launch.py: error: ')
  after = _tree_digest(workdir)
  changed = sorted(path for path in {*before, *after} if before.get(path) != after.get(path))
  assert not [path for path in changed if path.startswith(RUN)], changed  # the run: untouched
  assert 'was run with a different config' in line and f'{key} ' in line, line
  assert not changed, changed


# --- 5. A second run into the same run directory --------------------------------------------


def test_a_second_run_into_a_running_directory_is_refused_and_the_first_finishes(
    launcher, reference, template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  first = launcher.start(args, str(tmp_path / 'first'))
  first.wait_for(lambda: len(_lines(os.path.join(run_dir, run_files.METRICS))) >= 2,
                 'the second evaluation')
  # Held still (SIGSTOP) mid-run, lock and all, while the second run starts and is refused.
  os.kill(first.proc.pid, signal.SIGSTOP)
  try:
    before = _tree_digest(workdir)
    second = launcher.run(args)
    after = _tree_digest(workdir)
  finally:
    os.kill(first.proc.pid, signal.SIGCONT)
  assert second.returncode == 2, second.stderr[-3000:]
  line = _one_line(second.stderr)
  assert line.startswith(f'launch.py: error: run_dir {run_dir} is in use by pid '
                         f'{first.proc.pid} '), line
  assert after == before
  assert first.wait() == 0, first.output()[-3000:]
  _assert_clean(run_dir)
  _assert_same(_results(run_dir, template), reference)


# --- 6. Divergence --------------------------------------------------------------------------


def test_a_diverging_study_marks_each_run_at_its_first_non_finite_update(launcher, tmp_path):
  workdir = str(tmp_path / 'workdir')
  result = _finished(launcher.run(launcher.args(
      workdir, '--config.learning_rate=1e6', config=CONFIG, log_every=1)))
  table = {row.split('|')[1].strip(): row for row in result.stdout.splitlines()
           if row.startswith('| ') and 'schedule' not in row}
  assert list(table) == ['decay', 'hybrid', 'increase']
  for variant in table:
    run_dir = os.path.join(workdir, variant, 'seed_0')
    summary = run_files.read_json(os.path.join(run_dir, run_files.SUMMARY))
    log = run_files.read_jsonl(os.path.join(run_dir, run_files.TRAIN_LOG))
    # With a train-log line per update, its train_loss is that update's loss.
    assert [r['update'] for r in log] == list(range(1, len(log) + 1))
    first = next(r['update'] for r in log if r['train_loss'] is None)
    assert 'train_loss' in log[first - 1]['non_finite']  # the null is named
    assert all(np.isfinite(r['train_loss']) for r in log[:first - 1])
    assert summary['status'] == 'diverged'
    assert summary['diverged_at_update'] == first, (variant, summary, log[:first + 1])
    assert summary['final_test_accuracy'] is None
    assert f'diverged at update {first}' in table[variant], table[variant]
  assert _assert_strict_json(workdir) >= 3 * 6


# --- 7. A manual LR request, then kill -9 right after it is taken ---------------------------


def _request_file(run_dir: str) -> dict[str, Any] | None:
  try:
    return run_files.read_json(os.path.join(run_dir, manual_lr.REQUEST))
  except (FileNotFoundError, ValueError):
    return None


@pytest.mark.parametrize('epochs_before, where', [
    (6, 'between_checkpoints'),  # taken at epoch 7's start; the last checkpoint is epoch 5's
    (4, 'at_the_last_checkpoint'),  # taken at epoch 5's start, the update checkpointed just before
])
def test_a_manual_request_killed_right_after_it_is_taken_applies_once_at_that_update(
    epochs_before, where, launcher, template, tmp_path):
  del where
  workdir = str(tmp_path / 'killed')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir, log_every=1)
  process = launcher.start(args, str(tmp_path / 'killed_logs'))
  # Once the run has read requests at the start of epoch `epochs_before`, the next read
  # is at the start of the next epoch.
  process.wait_for(lambda: len(_lines(os.path.join(run_dir, run_files.METRICS))) >= epochs_before
                   and _last_update(run_dir) > epochs_before * UPDATES_PER_EPOCH,
                   f'epoch {epochs_before} under way')
  os.kill(process.proc.pid, signal.SIGSTOP)  # the request is in place before it goes on
  try:
    request = manual_lr.request(run_dir, 0.01)
  finally:
    os.kill(process.proc.pid, signal.SIGCONT)
  taken: list[dict[str, Any]] = []

  def taken_and_logged() -> bool:
    found = _request_file(run_dir)
    if found and found.get('taken_at_update') is not None:
      taken[:] = [found]
    return bool(taken) and bool(_lines(os.path.join(run_dir, run_files.EVENTS)))

  process.wait_for(taken_and_logged, 'the request taken and its event logged')
  process.kill()
  update = taken[0]['taken_at_update']
  assert taken[0]['id'] == request.id
  # At the next epoch start (or earlier, if a progress line came first).
  assert epochs_before * UPDATES_PER_EPOCH < update <= (epochs_before + 1) * UPDATES_PER_EPOCH
  assert _committed(run_dir)[-1] <= update

  # The uninterrupted run: the same request, already taken at the same update.
  straight = str(tmp_path / 'straight')
  os.makedirs(os.path.join(straight, RUN))
  run_files.write_json(os.path.join(straight, RUN, manual_lr.REQUEST), taken[0])
  _finished(launcher.run(launcher.args(straight, log_every=1)))
  _finished(launcher.run(args))

  want = _results(os.path.join(straight, RUN), template)
  got = _results(run_dir, template)
  (event,) = want.events
  assert (event['reason'], event['update'], event['learning_rate']) == ('manual', update, 0.01)
  lrs = lambda r: [(x['update'], x['learning_rate']) for x in r.train_log]
  assert len(lrs(got)) == TOTAL_UPDATES
  assert lrs(got) == lrs(want), _first_difference(lrs(got), lrs(want))
  assert lrs(got)[update - 1][1] != lrs(got)[update][1]  # the change took effect there
  _assert_same(got, want, logs=('metrics', 'train_log'))
  assert not os.path.exists(os.path.join(run_dir, manual_lr.REQUEST))  # acknowledged
  assert got.events == [event]


SCRIPTED_CONFIG = '''
import importlib.util
import ml_collections
spec = importlib.util.spec_from_file_location('digits_study', {path!r})
digits_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(digits_study)

def get_config(arg=None):
  config = digits_study.get_config('decay')
  config.variants.decay.lr_schedule = ml_collections.ConfigDict(dict(
      name='manual', init_value=0.05, changes=((5, 0.01),)))
  return config
'''


def test_a_scripted_change_killed_right_after_it_is_made_is_recorded_once(launcher, tmp_path):
  """Scripted manual decay at epoch 5, whose start is also the update of the checkpoint
  saved at the end of epoch 5's predecessor: killed once the change is logged, the
  resumed run makes it again from that checkpoint."""
  config = tmp_path / 'scripted.py'
  config.write_text(SCRIPTED_CONFIG.format(path=os.path.join(ROOT, CONFIG)))
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir, config=str(config))
  process = launcher.start(args, str(tmp_path / 'killed'))
  process.wait_for(lambda: bool(_lines(os.path.join(run_dir, run_files.EVENTS))),
                   'the scripted change logged')
  process.kill()
  assert _committed(run_dir)[-1] == 5 * UPDATES_PER_EPOCH
  _finished(launcher.run(args))
  metrics = run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))
  assert [r['learning_rate'] for r in metrics] == pytest.approx([0.05] * 5 + [0.01] * 35)
  events = run_files.read_jsonl(os.path.join(run_dir, run_files.EVENTS))
  assert {(e['reason'], e['update'], e['learning_rate']) for e in events} == {
      ('scripted', 5 * UPDATES_PER_EPOCH, 0.01)}
  assert len(events) == 1, events


# --- 8. Bad inputs: one line, status 2, before any compute ----------------------------------


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
    os.mkdir('/sys/lr_study_reliability_probe')
  except OSError:
    return '/sys/lr_study_reliability_workdir'
  os.rmdir('/sys/lr_study_reliability_probe')
  return None


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


@pytest.fixture(scope='module')
def bad_inputs(launcher, reference_workdir, tmp_path_factory) -> dict[str, Any]:
  """Every bad input's (result, places that must stay untouched, expected text), run
  three at a time."""
  base = tmp_path_factory.mktemp('bad_inputs')
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
  before = {'file': open(places['file']).read(), 'workdir': _tree_digest(places['workdir']),
            'ended': _tree_digest(places['ended'])}
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    futures = {name: pool.submit(launcher.run, job[0], 120) for name, job in jobs.items()
               if (mnist or name != 'manual_dir_corrupt')
               and (places['unwritable'] or name != 'workdir_unwritable')}
    results = {name: future.result() for name, future in futures.items()}
  return dict(jobs=jobs, results=results, places=places, before=before)


@pytest.mark.parametrize('name', [*BAD_LAUNCHES, *BAD_REQUESTS])
def test_a_bad_input_is_one_line_and_status_2_before_any_compute(name, bad_inputs):
  if name not in bad_inputs['results']:
    pytest.skip('no MNIST archives to corrupt' if 'manual_dir' in name
                else 'no unwritable directory for this user')
  args, workdir, prefix, text = bad_inputs['jobs'][name]
  result = bad_inputs['results'][name]
  assert result.returncode == 2, (args, result.stdout[-2000:], result.stderr[-2000:])
  line = _one_line(result.stderr)
  assert line.startswith(prefix) and text in line, line
  assert '\\n' not in line and 'lr_study/' not in line, line  # no escaped lines, no own frames
  assert 'Traceback' not in result.stdout
  places = bad_inputs['places']
  if workdir is not None:
    assert not os.path.exists(workdir), os.listdir(workdir)  # nothing ran, nothing was written
  assert not os.path.exists(places['empty_data_dir'])
  with open(places['file']) as f:
    assert f.read() == bad_inputs['before']['file']
  assert _tree_digest(places['workdir']) == bad_inputs['before']['workdir']  # no request written
  assert _tree_digest(places['ended']) == bad_inputs['before']['ended']


# --- 9. SIGTERM mid-epoch ------------------------------------------------------------------


def test_sigterm_mid_epoch_stops_in_seconds_with_one_line_and_resumes_exactly(
    launcher, reference, template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  process = launcher.start(args, str(tmp_path / 'stopped'))
  mid_epoch_8 = 8 * UPDATES_PER_EPOCH + 60
  process.wait_for(lambda: _last_update(run_dir) >= mid_epoch_8, f'update {mid_epoch_8}')
  sent = time.monotonic()
  process.proc.send_signal(signal.SIGTERM)
  status = process.wait(timeout=60)
  elapsed = time.monotonic() - sent
  assert status == 143, process.output()[-3000:]
  print(f'SIGTERM to exit: {elapsed:.2f} s')
  assert elapsed < 5, f'{elapsed:.1f} s from SIGTERM to exit'
  line = _one_line(process.stderr())
  match = re.fullmatch(r'launch\.py: decay seed 0: stopped by SIGTERM after update (\d+), '
                       r'checkpoint saved; the same command resumes from it', line)
  assert match, line
  update = int(match.group(1))
  assert update % UPDATES_PER_EPOCH, f'update {update} ends an epoch: not mid-epoch'
  assert update in _committed(run_dir)
  assert not os.path.exists(os.path.join(run_dir, 'lock.json'))

  _finished(launcher.run(args))
  _assert_clean(run_dir)
  _assert_same(_results(run_dir, template), reference)


# --- 10. A variant's override stays in its variant ------------------------------------------


def test_an_override_of_one_variant_changes_that_variant_alone(launcher, tmp_path):
  plans = {}
  for name, extra in (('plain', []),
                      ('override', ['--config.variants.decay.lr_schedule.init_value=1e6'])):
    workdir = str(tmp_path / name)
    _finished(launcher.run([sys.executable, 'launch.py', f'--config={CONFIG}', '--dry_run',
                            f'--workdir={workdir}', *extra]))
    plans[name] = {v: run_files.read_json(os.path.join(workdir, v, run_files.PLAN))
                   for v in ('decay', 'hybrid', 'increase')}
  for variant in ('hybrid', 'increase'):
    assert plans['override'][variant] == plans['plain'][variant]
    assert plans['override'][variant]['phases'][0]['learning_rate'] == 0.05
  decay = plans['override']['decay']['phases']
  assert [p['learning_rate'] for p in decay] == pytest.approx(
      [p['learning_rate'] * 1e6 / 0.05 for p in plans['plain']['decay']['phases']])
  assert decay[0]['learning_rate'] == 1e6


# --- 11. A run's record is append-only truth ------------------------------------------------


def _rewind_to_previous_checkpoint(run_dir: str) -> int:
  """The run as if killed right after its previous checkpoint: the latest and the summary
  gone. Returns the update it resumes from."""
  previous, latest = _committed(run_dir)
  shutil.rmtree(os.path.join(run_dir, 'checkpoints', str(latest)))
  os.remove(os.path.join(run_dir, run_files.SUMMARY))
  return previous


def _refused(launcher: Launcher, args: list[str], workdir: str) -> str:
  """Runs ``args``, which must stop with status 2 and one line, every file unchanged."""
  before = _tree_digest(workdir)
  result = launcher.run(args)
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
  line = _one_line(result.stderr)
  assert line.startswith('launch.py: error: ') and '--restart' in line, line
  assert _tree_digest(workdir) == before
  return line


def test_fewer_epochs_for_a_finished_run_are_refused_in_one_line_with_every_file_unchanged(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = _copy_reference(reference_workdir, workdir)
  line = _refused(launcher, launcher.args(workdir, f'--config.num_epochs={EPOCHS - 1}'), workdir)
  assert line.startswith(f'launch.py: error: run_dir {run_dir}: num_epochs {EPOCHS} -> '
                         f'{EPOCHS - 1} would relabel its {TOTAL_UPDATES:,} updates done: the '
                         f'new plan has {TOTAL_UPDATES - UPDATES_PER_EPOCH:,} updates in all'), line


@pytest.mark.parametrize('damage', ['deleted', 'emptied'])
@pytest.mark.parametrize('finished', [True, False], ids=['finished', 'mid_run'])
def test_a_damaged_metrics_log_is_refused_in_one_line_with_every_file_unchanged(
    damage, finished, launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = _copy_reference(reference_workdir, workdir)
  update = TOTAL_UPDATES if finished else _rewind_to_previous_checkpoint(run_dir)
  metrics = os.path.join(run_dir, run_files.METRICS)
  if damage == 'deleted':
    os.remove(metrics)
  else:
    open(metrics, 'w').close()
  line = _refused(launcher, launcher.args(workdir), workdir)
  assert line.startswith(f'launch.py: error: {metrics} holds 0 of the '
                         f'{update // UPDATES_PER_EPOCH} records its checkpoint of update '
                         f'{update:,} counted'), line


def test_restart_while_a_run_trains_there_is_refused_and_the_run_finishes_exactly(
    launcher, reference, template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  first = launcher.start(args, str(tmp_path / 'first'))
  first.wait_for(lambda: len(_lines(os.path.join(run_dir, run_files.METRICS))) >= 2,
                 'the second evaluation')
  os.kill(first.proc.pid, signal.SIGSTOP)  # held still mid-run, lock and all
  try:
    line = _refused(launcher, [*args, '--restart'], workdir)
  finally:
    os.kill(first.proc.pid, signal.SIGCONT)
  assert line.startswith(f'launch.py: error: --restart: run_dir {run_dir} is in use by pid '
                         f'{first.proc.pid} '), line
  assert first.wait() == 0, first.output()[-3000:]
  _assert_clean(run_dir)
  _assert_same(_results(run_dir, template), reference)
  assert os.listdir(tmp_path) == ['first', 'workdir']  # nothing moved aside


def test_a_finished_run_run_again_leaves_its_directory_byte_identical(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = _copy_reference(reference_workdir, workdir)
  before = _tree_digest(run_dir)
  result = _finished(launcher.run(launcher.args(workdir)))
  assert re.search(rf'^decay seed 0: test accuracy \S+ after {TOTAL_UPDATES} updates; it ended '
                   'earlier, its record stands$', result.stderr, re.M), result.stderr
  assert _tree_digest(run_dir) == before  # the summary's compiles and wall time too


def test_a_resume_on_another_device_count_is_recorded_in_a_record_of_its_own(
    launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = _copy_reference(reference_workdir, workdir)
  update = _rewind_to_previous_checkpoint(run_dir)
  started = run_files.read_json(os.path.join(run_dir, run_files.METADATA))
  two = Launcher(launcher.data_dir, dict(launcher.env,
                                         XLA_FLAGS='--xla_force_host_platform_device_count=2'))
  _finished(two.run(launcher.args(workdir)))
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


def test_a_batch_ramp_stretched_over_more_epochs_is_refused_with_every_file_unchanged(
    launcher, extend_config, tmp_path):
  workdir = str(tmp_path / 'workdir')
  _finished(launcher.run(launcher.args(workdir, config=f'{extend_config}:ramp')))
  line = _refused(launcher, launcher.args(workdir, '--config.num_epochs=20',
                                          config=f'{extend_config}:ramp'), workdir)
  assert 'num_epochs 10 -> 20 would relabel its ' in line, line
  assert 'the new plan changes the batch size of update ' in line, line


def test_an_agreeing_extension_of_a_finished_run_ends_as_a_fresh_run_of_the_new_config(
    launcher, extend_config, template, tmp_path):
  extended, fresh = str(tmp_path / 'extended'), str(tmp_path / 'fresh')
  config = f'{extend_config}:steps'
  _finished(launcher.run(launcher.args(extended, config=config)))
  _finished(launcher.run(launcher.args(extended, '--config.num_epochs=20', config=config)))
  _finished(launcher.run(launcher.args(fresh, '--config.num_epochs=20', config=config)))
  run = os.path.join('steps', 'seed_0')
  got, want = (_results(os.path.join(d, run), template) for d in (extended, fresh))
  assert got.summary['epochs'] == 20 and got.summary['updates'] == 4 * 179 + 16 * 44
  _assert_same(got, want)
  (record,) = run_files.read_json(os.path.join(extended, run, run_files.METADATA))['resumes']
  assert (record['update'], record['num_epochs']) == (4 * 179 + 6 * 44, {'from': 10, 'to': 20})


# --- 12. Ctrl-C and a full disk: one line each, then an exact resume -------------------------


def test_ctrl_c_mid_epoch_stops_with_one_line_and_resumes_exactly(
    launcher, reference, template, tmp_path):
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  process = launcher.start(args, str(tmp_path / 'interrupted'))
  mid_epoch_12 = 12 * UPDATES_PER_EPOCH + 60
  process.wait_for(lambda: _last_update(run_dir) >= mid_epoch_12, f'update {mid_epoch_12}')
  process.proc.send_signal(signal.SIGINT)
  assert process.wait(timeout=60) == 130, process.output()[-3000:]
  assert _one_line(process.stderr()) == ('launch.py: interrupted (Ctrl-C); the same command '
                                         'resumes from the last checkpoint')
  assert not os.path.exists(os.path.join(run_dir, 'lock.json'))
  _finished(launcher.run(args))
  _assert_clean(run_dir)
  _assert_same(_results(run_dir, template), reference)


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
    launcher, reference, template, small_disk):
  disk, grow = small_disk
  workdir = os.path.join(disk, 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  result = launcher.run(args)
  assert result.returncode == 2, result.stderr[-3000:]
  line = _one_line(result.stderr)
  assert line.startswith('launch.py: error: no space left on device for ') and line.endswith(
      ': free some, then the same command resumes from the last checkpoint'), line
  grow()
  _finished(launcher.run(args))
  _assert_clean(run_dir)
  _assert_same(_results(run_dir, template), reference)
