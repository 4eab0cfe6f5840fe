"""One study over two processes, as on two hosts of a pod slice: ``launch.py --distributed``.

Two local processes with two CPU devices each join through ``jax.distributed`` (gloo
between them). Each reads its own half of the digits training split, kept on its devices
or streamed; the pmapped steps average over all four devices.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from lr_study.runtime import run_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 8
UPDATES = 2 * 179 + 2 * 44 + 2 * 11 + 2 * 2  # the dry run's plan of this config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _run_two_processes(workdirs: list[str], data_dir: str, mode: str
                       ) -> list[subprocess.CompletedProcess]:
  port = _free_port()
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2',
             JAX_PLATFORMS='cpu')
  procs = [subprocess.Popen(
      [sys.executable, 'launch.py', '--distributed', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={i}', '--config=experiments/digits_study.py:increase',
       '--config.seeds=0', f'--config.num_epochs={EPOCHS}',
       '--config.variants.increase.batch_schedule.boundaries=(2,4,6)',
       '--config.variants.increase.batch_schedule.factor=(4,4,4)',
       '--config.checkpoint_every_epochs=2', f'--config.dataset.data_dir={data_dir}',
       f'--config.dataset.mode={mode}',
       f'--workdir={workdir}'], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i, workdir in enumerate(workdirs)]
  results = []
  for proc in procs:
    out, err = proc.communicate(timeout=300)
    results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
  return results


def _final(result: subprocess.CompletedProcess) -> tuple[str, str]:
  """(test accuracy, updates) from the run's last line."""
  return re.findall(r'test accuracy (\S+) after (\d+) updates', result.stderr)[-1]


@pytest.mark.parametrize('mode', ['in_memory', 'streaming'])
def test_two_processes_train_one_model_and_only_process_zero_writes(tmp_path, digits_data_dir,
                                                                    mode):
  workdirs = [str(tmp_path / 'process_0'), str(tmp_path / 'process_1')]
  first = _run_two_processes(workdirs, digits_data_dir, mode)
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

  # Run again: process 0 finds the finished run's checkpoint and tells process 1, so both
  # skip training together and report the same summary.
  again = _run_two_processes(workdirs, digits_data_dir, mode)
  assert [r.returncode for r in again] == [0, 0], [r.stderr[-2000:] for r in again]
  assert _final(again[0]) == _final(again[1]) == _final(first[0])
  assert len(run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))) == len(metrics)
  assert not os.path.exists(workdirs[1])
