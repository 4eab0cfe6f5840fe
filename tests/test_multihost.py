"""One study over two processes, as on two hosts of a pod slice: ``launch.py --distributed``.

Two local processes with two CPU devices each join through ``jax.distributed`` (gloo
between them). Each reads its own half of the digits training split, kept on its devices
or streamed; the pmapped steps average over all four devices. A SIGTERM to one of them
stops both after the same update, and the same command resumes exactly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import RESULT_FIELDS, once_per_run
from lr_study.runtime import run_files

pytestmark = pytest.mark.slow  # each test trains two-process studies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 8
# B = 32 -> 128 -> 352 -> 704 at epochs 2, 4, 6 (8 to 176 per device), at LR 0.1.
UPDATES = 2 * 44 + 2 * 11 + 2 * 4 + 2 * 2  # the dry run's plan of this config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start_two_processes(workdirs: list[str], data_dir: str, mode: str
                         ) -> list[subprocess.Popen]:
  port = _free_port()
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2',
             JAX_PLATFORMS='cpu')
  procs = [subprocess.Popen(
      [sys.executable, 'launch.py', '--distributed', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={i}', '--config=experiments/digits_study.py:increase',
       '--config.seeds=0', f'--config.num_epochs={EPOCHS}', '--config.batch_size=32',
       '--config.learning_rate=0.1',
       '--config.variants.increase.batch_schedule.boundaries=(2,4,6)',
       '--config.variants.increase.batch_schedule.factor=(4,2.75,2)',
       '--config.checkpoint_every_epochs=2', '--config.train_log_every_updates=11',
       # In memory, two strata of 512 (each process's 128 of highest loss and 128 others)
       # every 2 epochs; streamed, 512 drawn uniformly.
       '--config.gradient_noise_batch_size=32', '--config.gradient_noise_examples=512',
       '--config.gradient_noise_every_epochs=2',
       f'--config.dataset.data_dir={data_dir}',
       f'--config.dataset.mode={mode}',
       f'--workdir={workdir}'], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i, workdir in enumerate(workdirs)]
  return procs


def _finish(procs: list[subprocess.Popen]) -> list[subprocess.CompletedProcess]:
  results = []
  for proc in procs:
    out, err = proc.communicate(timeout=300)
    results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
  return results


def _run_two_processes(workdirs: list[str], data_dir: str, mode: str
                       ) -> list[subprocess.CompletedProcess]:
  return _finish(_start_two_processes(workdirs, data_dir, mode))


def _final(result: subprocess.CompletedProcess) -> tuple[str, str]:
  """(test accuracy, updates) from the run's last line."""
  return re.findall(r'test accuracy (\S+) after (\d+) updates', result.stderr)[-1]


@pytest.fixture(scope='session')
def finished(digits_data_dir, tmp_path_factory):
  """``finished(mode)``: (workdirs, results) of the study run in ``mode`` by two processes,
  trained once per test run (``once_per_run``) and read by every test that asks."""

  def run(mode: str) -> tuple[list[str], list[subprocess.CompletedProcess]]:
    def train(base: str) -> dict:
      workdirs = [os.path.join(base, 'process_0'), os.path.join(base, 'process_1')]
      results = _run_two_processes(workdirs, digits_data_dir, mode)
      return {'workdirs': workdirs,
              'results': [{k: getattr(r, k) for k in RESULT_FIELDS} for r in results]}
    done = once_per_run(tmp_path_factory, f'two_processes_{mode}', train)
    return done['workdirs'], [subprocess.CompletedProcess(**r) for r in done['results']]

  return run


@pytest.mark.parametrize('mode', ['in_memory', 'streaming'])
def test_two_processes_train_one_model_and_only_process_zero_writes(finished, digits_data_dir,
                                                                    mode):
  workdirs, first = finished(mode)
  assert [r.returncode for r in first] == [0, 0], [r.stderr[-2000:] for r in first]

  run_dir = os.path.join(workdirs[0], 'increase', 'seed_0')
  metrics = run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))
  assert len(metrics) == EPOCHS and metrics[-1]['update'] == UPDATES
  # The two halves of the test split add up to every test example, once.
  assert {m['test_examples'] for m in metrics} == {360}
  assert metrics[-1]['test_accuracy'] > 0.9
  assert json.loads(open(os.path.join(run_dir, run_files.SUMMARY)).read())['updates'] == UPDATES
  assert not os.path.exists(workdirs[1])
  # Both processes hold the same model: they report the same final accuracy.
  assert _final(first[0]) == _final(first[1]) == (f'{metrics[-1]["test_accuracy"]:.4f}',
                                                   str(UPDATES))


def test_a_finished_two_process_run_run_again_skips_training_on_both(finished, digits_data_dir,
                                                                     tmp_path):
  """Process 0 finds the finished run's checkpoint and tells process 1, so both skip
  training together and report the same summary. In memory only: the decision rests on
  the checkpoint, not on the feed."""
  shared, first = finished('in_memory')
  assert [r.returncode for r in first] == [0, 0], [r.stderr[-2000:] for r in first]
  workdirs = [str(tmp_path / os.path.basename(w)) for w in shared]
  shutil.copytree(shared[0], workdirs[0])
  metrics_file = os.path.join(workdirs[0], 'increase', 'seed_0', run_files.METRICS)
  evaluations = len(run_files.read_jsonl(metrics_file))
  again = _run_two_processes(workdirs, digits_data_dir, 'in_memory')
  assert [r.returncode for r in again] == [0, 0], [r.stderr[-2000:] for r in again]
  assert _final(again[0]) == _final(again[1]) == _final(first[0])
  assert len(run_files.read_jsonl(metrics_file)) == evaluations == EPOCHS
  assert not os.path.exists(workdirs[1])


def _records(run_dir: str) -> list[dict]:
  return [{k: v for k, v in record.items() if k != 'wall_time'}
          for record in run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))]


def test_a_sigterm_to_one_process_stops_both_after_one_update_and_the_rerun_ends_exactly(
    finished, tmp_path, digits_data_dir):
  """SIGTERM reaches process 1 alone, as a preempted host: jax's preemption sync manager
  (orbax's reached_preemption) stops both after the same dispatch, process 0 saves that
  update, both exit 143 with the same line; the same command ends as an uninterrupted run."""
  straight, uninterrupted = finished('in_memory')
  assert [r.returncode for r in uninterrupted] == [0, 0], [r.stderr[-2000:] for r in uninterrupted]
  workdirs = [str(tmp_path / 'process_0'), str(tmp_path / 'process_1')]
  run_dir = os.path.join(workdirs[0], 'increase', 'seed_0')
  procs = _start_two_processes(workdirs, digits_data_dir, 'in_memory')
  deadline = time.monotonic() + 300
  # Both stop about a second after the signal (jax's preemption notifier): sent at update 11
  # of 122, it leaves the run time to stop in (measured: after update 33 to 55).
  while not run_files.read_jsonl(os.path.join(run_dir, run_files.TRAIN_LOG)):
    assert time.monotonic() < deadline and all(p.poll() is None for p in procs), 'no update 11'
    time.sleep(0.01)
  procs[1].send_signal(signal.SIGTERM)
  stopped = _finish(procs)
  assert [r.returncode for r in stopped] == [143, 143], [r.stderr[-2000:] for r in stopped]
  lines = [r.stderr.strip().splitlines()[-1] for r in stopped]
  match = re.fullmatch(r'launch\.py: increase seed 0: stopped by SIGTERM after update (\d+), '
                       r'checkpoint saved; the same command resumes from it', lines[0])
  assert match and lines[1] == lines[0], lines
  assert str(match.group(1)) in os.listdir(os.path.join(run_dir, run_files.CHECKPOINTS))
  assert len(_records(run_dir)) < EPOCHS

  resumed = _run_two_processes(workdirs, digits_data_dir, 'in_memory')
  assert [r.returncode for r in resumed] == [0, 0], [r.stderr[-2000:] for r in resumed]
  assert _records(run_dir) == _records(os.path.join(straight[0], 'increase', 'seed_0'))
  assert _final(resumed[0]) == _final(resumed[1]) == _final(uninterrupted[0])
  assert not os.path.exists(workdirs[1])
