"""One process at a time in a run directory: real second processes are refused, with the
holder named; the lock of a dead process is taken over; the lock goes with its holder."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from typing import Any

import pytest

from conftest import (Launcher, RUN, Results, assert_clean, assert_same_results, log_lines,
                      refused_in_one_line, run_results)
from lr_study.errors import ConfigError
from lr_study.runtime import lock
from lr_study.runtime import run_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Takes the lock, says so, and holds it until its stdin closes (then releases it).
_HOLDER = '''
import sys
sys.path.insert(0, {root!r})
from lr_study.runtime.lock import RunLock
with RunLock(sys.argv[1]):
  print('locked', flush=True)
  sys.stdin.read()
'''

# Tries to take the lock: prints 'locked' or the error, exits 0 or 2.
_CONTENDER = '''
import sys
sys.path.insert(0, {root!r})
from lr_study.errors import ConfigError
from lr_study.runtime.lock import RunLock
try:
  with RunLock(sys.argv[1]):
    print('locked')
except ConfigError as e:
  print(e)
  sys.exit(2)
'''


def _start_holder(run_dir: str) -> subprocess.Popen:
  process = subprocess.Popen([sys.executable, '-c', _HOLDER.format(root=ROOT), run_dir],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  assert process.stdout.readline() == 'locked\n'
  return process


def _contend(run_dir: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-c', _CONTENDER.format(root=ROOT), run_dir],
                        capture_output=True, text=True, timeout=60, check=False)


def _dead_pid() -> int:
  process = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                           capture_output=True, text=True, check=True)
  return int(process.stdout)


def _lock_content(pid: int, host: str | None = None, start: str | None = None) -> str:
  return json.dumps({'pid': pid, 'host': host or socket.gethostname(), 'since': 'earlier',
                     'start': start, 'token': 'old'})


def test_a_second_process_is_refused_with_the_directory_and_the_holder_named(tmp_path):
  run_dir = str(tmp_path / 'run')
  holder = _start_holder(run_dir)
  try:
    with pytest.raises(ConfigError) as error:
      lock.RunLock(run_dir).acquire()
  finally:
    holder.communicate('')
  assert str(error.value).startswith(
      f'run_dir {run_dir} is in use by pid {holder.pid} on host {socket.gethostname()} since ')
  assert '\n' not in str(error.value)


def test_this_process_holding_the_lock_refuses_a_second_process(tmp_path):
  run_dir = str(tmp_path)
  with lock.RunLock(run_dir):
    contender = _contend(run_dir)
  assert contender.returncode == 2
  assert contender.stdout.startswith(f'run_dir {run_dir} is in use by pid {os.getpid()} ')


def test_the_lock_is_released_when_its_context_exits(tmp_path):
  run_dir = str(tmp_path)
  with lock.RunLock(run_dir):
    assert os.path.exists(os.path.join(run_dir, lock.LOCK))
  assert os.listdir(run_dir) == []
  assert _contend(run_dir).stdout == 'locked\n'


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
  run_dir = str(tmp_path)
  holder = _start_holder(run_dir)
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert os.path.exists(os.path.join(run_dir, lock.LOCK))  # a kill -9 leaves the file
  with lock.RunLock(run_dir) as run_lock:
    assert run_lock.taken_over.pid == holder.pid
    assert run_files.read_json(os.path.join(run_dir, lock.LOCK))['pid'] == os.getpid()


def test_a_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path):
  dead = _dead_pid()
  (tmp_path / lock.LOCK).write_text(_lock_content(dead))
  with lock.RunLock(str(tmp_path)) as run_lock:
    assert run_lock.taken_over.pid == dead


def test_a_lock_file_on_ram_names_its_live_holder():
  run_dir = f'ram://test_lock/{uuid.uuid4().hex}'
  with lock.RunLock(run_dir):
    with pytest.raises(ConfigError, match=rf'^run_dir {run_dir} is in use by pid '
                       rf'{os.getpid()} on host '):
      lock.RunLock(run_dir).acquire()
  assert not run_files.exists(os.path.join(run_dir, lock.LOCK))


def test_a_lock_file_on_ram_of_a_dead_pid_is_taken_over():
  run_dir = f'ram://test_lock/{uuid.uuid4().hex}'
  dead = _dead_pid()
  run_files.write_atomic(os.path.join(run_dir, lock.LOCK), _lock_content(dead))
  with lock.RunLock(run_dir) as run_lock:
    assert run_lock.taken_over.pid == dead


def test_a_lock_file_of_a_reused_pid_is_stale():
  reused = lock.Holder(pid=os.getpid(), host=socket.gethostname(), since='earlier',
                       start='1', token='old')  # this pid, but a process started at tick 1
  assert lock.is_stale(reused)
  live = dataclasses.replace(reused, start=lock._process_start(os.getpid()))  # pylint: disable=protected-access
  assert not lock.is_stale(live)


def test_a_lock_file_on_ram_from_another_host_is_held_and_names_the_file_to_delete():
  run_dir = f'ram://test_lock/{uuid.uuid4().hex}'
  path = os.path.join(run_dir, lock.LOCK)
  run_files.write_atomic(path, _lock_content(_dead_pid(), host='elsewhere'))
  with pytest.raises(ConfigError, match=rf'^run_dir {run_dir} is in use by pid \d+ on host '
                     rf'elsewhere since earlier; if that run is dead, delete {path}$'):
    lock.RunLock(run_dir).acquire()


# --- launch.py into a run directory another launch.py holds ------------------------------------


def _refused_while_a_run_trains_there(launcher: Launcher, reference_results: Results,
                                      template: Any, tmp_path, *extra: str) -> tuple[str, str, int]:
  """Starts the reference command and holds it still (SIGSTOP) mid-run, lock and all, while
  the same command with ``extra`` starts and is refused in one line, every file unchanged;
  then the first run must finish as the reference did. Returns (the refusal, the run
  directory, the first run's pid)."""
  workdir = str(tmp_path / 'workdir')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir)
  first = launcher.start(args, str(tmp_path / 'first'))
  first.wait_for(lambda: len(log_lines(os.path.join(run_dir, run_files.METRICS))) >= 2,
                 'the second evaluation')
  os.kill(first.proc.pid, signal.SIGSTOP)
  try:
    line = refused_in_one_line(launcher, [*args, *extra], workdir)
  finally:
    os.kill(first.proc.pid, signal.SIGCONT)
  assert first.wait() == 0, first.output()[-3000:]
  assert_clean(run_dir)
  assert_same_results(run_results(run_dir, template), reference_results)
  return line, run_dir, first.proc.pid


@pytest.mark.slow
def test_a_second_run_into_a_running_directory_is_refused_and_the_first_finishes(
    launcher, reference_results, decay_state_template, tmp_path):
  line, run_dir, pid = _refused_while_a_run_trains_there(
      launcher, reference_results, decay_state_template, tmp_path)
  assert line.startswith(f'launch.py: error: run_dir {run_dir} is in use by pid {pid} '), line


@pytest.mark.slow
def test_restart_while_a_run_trains_there_is_refused_and_the_run_finishes_exactly(
    launcher, reference_results, decay_state_template, tmp_path):
  line, run_dir, pid = _refused_while_a_run_trains_there(
      launcher, reference_results, decay_state_template, tmp_path, '--restart')
  assert line.startswith(f'launch.py: error: --restart: run_dir {run_dir} is in use by pid '
                         f'{pid} '), line
  assert os.listdir(tmp_path) == ['first', 'workdir']  # nothing moved aside
