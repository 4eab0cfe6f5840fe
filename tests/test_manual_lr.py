"""Manual LR requests: the tool refuses a bad request in one line with status 2; the run
reads a request without deleting it, sets a malformed one aside, and acknowledges a
request once it is checkpointed, so that a kill in between applies it exactly once."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest

from conftest import (RUN, TOTAL_UPDATES, UPDATES_PER_EPOCH, assert_same_results, committed_steps,
                      first_difference, last_update, log_lines, run_results, succeeded)
from lr_study.runtime import run_files
from lr_study.training import manual_lr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = 'python -m lr_study.training.manual_lr'


@pytest.fixture
def run_dir(tmp_path) -> str:
  run_files.write_json(str(tmp_path / run_files.PLAN), {'phases': []})
  return str(tmp_path)


def _write(run_dir: str, text: str | bytes) -> str:
  path = os.path.join(run_dir, manual_lr.REQUEST)
  with open(path, 'wb') as f:
    f.write(text.encode() if isinstance(text, str) else text)
  return path


def _tool(capsys, *args: str) -> tuple[int, str, str]:
  status = manual_lr.main([PROGRAM, *args])
  out, err = capsys.readouterr()
  return status, out, err


def test_the_tool_writes_a_strict_request_that_the_run_reads(run_dir, capsys):
  status, out, err = _tool(capsys, f'--run_dir={run_dir}', '--lr=0.01')
  assert (status, err) == (0, '')
  assert out.startswith(f'requested learning rate 0.01 in {run_dir}/{manual_lr.REQUEST}')

  def refuse(constant):
    raise ValueError(constant)

  with open(os.path.join(run_dir, manual_lr.REQUEST)) as f:
    fields = json.loads(f.read(), parse_constant=refuse)
  assert set(fields) == {'id', 'learning_rate', 'requested_at'}
  assert manual_lr.read_request(run_dir) == manual_lr.Request(fields['id'], 0.01)


@pytest.mark.parametrize('lr', ['nan', 'inf', '-inf', '0', '-0.1', 'abc', ''])
def test_the_tool_refuses_a_learning_rate_that_is_not_finite_and_positive(run_dir, capsys, lr):
  status, out, err = _tool(capsys, f'--run_dir={run_dir}', f'--lr={lr}')
  assert (status, out) == (2, '')
  assert err.startswith(f'{PROGRAM}: error: ') and err.count('\n') == 1
  assert not os.path.exists(os.path.join(run_dir, manual_lr.REQUEST))


def test_the_tool_refuses_a_directory_without_a_plan(tmp_path, capsys):
  status, _, err = _tool(capsys, f'--run_dir={tmp_path}', '--lr=0.01')
  assert (status, err) == (2, f'{PROGRAM}: error: --run_dir {tmp_path} is not a run '
                              'directory (it has no plan.json)\n')
  assert os.listdir(tmp_path) == []


def test_the_tool_refuses_a_run_dir_that_is_not_a_directory(tmp_path, capsys):
  status, _, err = _tool(capsys, f'--run_dir={tmp_path}/absent', '--lr=0.01')
  assert (status, err) == (2, f'{PROGRAM}: error: --run_dir {tmp_path}/absent is not a '
                              'directory\n')


@pytest.mark.parametrize('summary', [{'status': 'finished', 'updates': 30},
                                     {'status': 'diverged', 'updates': 20}])
def test_the_tool_refuses_a_run_that_has_ended(summary, run_dir, capsys):
  os.makedirs(os.path.join(run_dir, run_files.CHECKPOINTS, '10'))
  os.makedirs(os.path.join(run_dir, run_files.CHECKPOINTS, '30'))
  run_files.write_json(os.path.join(run_dir, run_files.SUMMARY), summary)
  status, out, err = _tool(capsys, f'--run_dir={run_dir}', '--lr=0.01')
  assert (status, out, err) == (2, '', f'{PROGRAM}: error: --run_dir {run_dir}: the run has '
                                       'ended (its summary.json and last checkpoint agree, or '
                                       'it diverged), so no request can apply to it\n')
  assert not os.path.exists(os.path.join(run_dir, manual_lr.REQUEST))


def test_the_tool_takes_a_request_for_a_finished_run_that_trains_on_from_an_older_checkpoint(
    run_dir, capsys):
  os.makedirs(os.path.join(run_dir, run_files.CHECKPOINTS, '10'))  # later ones deleted
  run_files.write_json(os.path.join(run_dir, run_files.SUMMARY),
                       {'status': 'finished', 'updates': 30})
  assert _tool(capsys, f'--run_dir={run_dir}', '--lr=0.01')[0] == 0
  assert manual_lr.read_request(run_dir).learning_rate == 0.01


@pytest.mark.parametrize('flag', ['--help', '-h', '--helpfull'])
def test_the_tool_prints_its_usage_for_help_and_exits_0(flag, capsys):
  status, out, err = _tool(capsys, flag)
  assert (status, err) == (0, '')
  assert f'{PROGRAM} --run_dir=DIR --lr=LR' in out
  assert '--run_dir: ' in out and '--lr: ' in out


@pytest.mark.parametrize('args, message', [
    ((), '--run_dir is required'), (('--run_dir=x',), '--lr is required'),
    (('--run_dir=x', '--lr=0.1', 'extra'), 'unexpected argument(s): extra'),
    (('--learning_rate=0.1',), "Unknown command line flag 'learning_rate'")])
def test_the_tool_refuses_missing_or_unknown_arguments(capsys, args, message):
  status, _, err = _tool(capsys, *args)
  assert (status, err) == (2, f'{PROGRAM}: error: {message}\n')


def test_the_tool_run_as_a_module_fails_in_one_line_without_a_traceback(run_dir):
  process = subprocess.run([sys.executable, '-m', 'lr_study.training.manual_lr',
                            f'--run_dir={run_dir}', '--lr=nan'], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, check=False)
  assert process.returncode == 2
  assert process.stderr == (f'{PROGRAM}: error: --lr must be a finite number > 0, got nan\n')


def test_read_request_leaves_the_request_in_place(run_dir):
  sent = manual_lr.request(run_dir, 0.02)
  assert manual_lr.read_request(run_dir) == sent
  assert manual_lr.read_request(run_dir) == sent
  assert os.path.exists(os.path.join(run_dir, manual_lr.REQUEST))


def test_read_request_without_a_request_is_none(run_dir):
  assert manual_lr.read_request(run_dir) is None


MALFORMED = {
    'garbage': b'\x00\xffnot json', 'torn': '{"learning_rate": 0.0', 'a_list': '[0.01]',
    'no_learning_rate': '{"id": "a"}', 'unknown_field': '{"lr": 0.01, "learning_rate": 0.01}',
    'nan': '{"learning_rate": NaN}', 'infinity': '{"learning_rate": Infinity}',
    'zero': '{"learning_rate": 0}', 'negative': '{"learning_rate": -0.01}',
    'a_string': '{"learning_rate": "0.01"}', 'a_bool': '{"learning_rate": true}',
    'null': '{"learning_rate": null}', 'empty_id': '{"learning_rate": 0.01, "id": ""}'}


@pytest.mark.parametrize('kind', sorted(MALFORMED))
def test_a_malformed_request_is_set_aside_with_one_warning(run_dir, kind, caplog):
  _write(run_dir, MALFORMED[kind])
  with caplog.at_level(logging.WARNING):
    assert manual_lr.read_request(run_dir) is None
  (record,) = caplog.records
  assert record.levelno == logging.WARNING and '\n' not in record.getMessage()
  assert record.getMessage().startswith(f'manual LR request {run_dir}/set_lr.json rejected (')
  assert sorted(os.listdir(run_dir)) == ['plan.json', manual_lr.REJECTED]
  rejected = open(os.path.join(run_dir, manual_lr.REJECTED), 'rb').read()
  assert rejected == (MALFORMED[kind] if isinstance(MALFORMED[kind], bytes)
                      else MALFORMED[kind].encode())
  assert manual_lr.read_request(run_dir) is None  # the run goes on


def test_acknowledge_deletes_the_request_it_names(run_dir):
  sent = manual_lr.request(run_dir, 0.02)
  assert manual_lr.acknowledge(run_dir, sent.id)
  assert manual_lr.read_request(run_dir) is None


def test_acknowledge_keeps_a_newer_request(run_dir):
  old = manual_lr.request(run_dir, 0.02)
  new = manual_lr.request(run_dir, 0.005)
  assert not manual_lr.acknowledge(run_dir, old.id)
  assert manual_lr.read_request(run_dir) == new


def test_a_taken_request_is_not_replaced_before_its_checkpoint(run_dir, capsys):
  """One request file: replacing a taken, unacknowledged request would lose its change
  if the run stopped before its next checkpoint (it resumes from an older one)."""
  first = manual_lr.request(run_dir, 0.02)
  taken = manual_lr.mark_taken(run_dir, manual_lr.read_request(run_dir), 1074)
  status, out, err = _tool(capsys, f'--run_dir={run_dir}', '--lr=0.01')
  assert (status, out) == (2, '')
  assert err == (f'{PROGRAM}: error: --run_dir {run_dir}: the run took request {first.id} '
                 '(learning rate 0.02) at update 1074 and has not checkpointed it yet; a new '
                 'request now would lose that change if the run stopped before its next '
                 'checkpoint: ask again once its checkpoint has deleted set_lr.json\n')
  assert manual_lr.read_request(run_dir) == taken
  assert manual_lr.acknowledge(run_dir, first.id)  # the run's next checkpoint
  second = manual_lr.request(run_dir, 0.01)
  assert manual_lr.read_request(run_dir) == second


class _Run:
  """The loop's side of the protocol: its checkpointed state holds the id applied last."""

  def __init__(self, run_dir: str, checkpointed: dict):
    self.run_dir, self.state, self.applied = run_dir, dict(checkpointed), []

  def poll(self) -> None:
    pending = manual_lr.read_request(self.run_dir)
    if pending is not None and pending.id != self.state.get('manual_request'):
      self.applied.append(pending.learning_rate)
      self.state.update(manual_request=pending.id, learning_rate=pending.learning_rate)

  def checkpoint(self) -> dict:
    saved = dict(self.state)
    if saved.get('manual_request'):
      manual_lr.acknowledge(self.run_dir, saved['manual_request'])
    return saved


def test_a_kill_before_the_checkpoint_applies_the_request_again_on_resume(run_dir):
  manual_lr.request(run_dir, 0.01)
  checkpointed = {'learning_rate': 0.1}
  first = _Run(run_dir, checkpointed)
  first.poll()
  assert first.applied == [0.01]  # then kill -9: no checkpoint holds the change
  resumed = _Run(run_dir, checkpointed)
  resumed.poll()
  resumed.poll()
  assert resumed.applied == [0.01]
  assert resumed.checkpoint()['learning_rate'] == 0.01
  assert manual_lr.read_request(run_dir) is None


def test_a_kill_after_the_checkpoint_does_not_apply_the_request_twice(run_dir):
  manual_lr.request(run_dir, 0.01)
  first = _Run(run_dir, {'learning_rate': 0.1})
  first.poll()
  checkpointed = dict(first.state)  # saved; then kill -9 before the acknowledgement
  resumed = _Run(run_dir, checkpointed)
  resumed.poll()
  assert resumed.applied == [] and resumed.state['learning_rate'] == 0.01
  resumed.checkpoint()
  assert manual_lr.read_request(run_dir) is None


def test_a_hand_written_request_is_known_by_its_content_and_time(run_dir):
  path = _write(run_dir, '{"learning_rate": 0.01}')
  os.utime(path, ns=(1_000_000_000, 1_000_000_000))
  first = manual_lr.read_request(run_dir)
  assert first.id.startswith('sha256:') and manual_lr.read_request(run_dir) == first
  _write(run_dir, '{"learning_rate": 0.01}')  # the same request, written again later
  os.utime(path, ns=(2_000_000_000, 2_000_000_000))
  assert manual_lr.read_request(run_dir).id != first.id


def test_requests_work_on_a_ram_run_directory():
  ram_dir = f'ram://test_manual_lr/{uuid.uuid4().hex}'
  run_files.make_dirs(ram_dir)
  run_files.write_json(os.path.join(ram_dir, run_files.PLAN), {'phases': []})
  sent = manual_lr.request(ram_dir, 0.03)
  assert manual_lr.read_request(ram_dir) == sent
  assert manual_lr.acknowledge(ram_dir, sent.id)
  run_files.write_atomic(os.path.join(ram_dir, manual_lr.REQUEST), '{"learning_rate": -1}')
  assert manual_lr.read_request(ram_dir) is None
  assert run_files.exists(os.path.join(ram_dir, manual_lr.REJECTED))


# --- launch.py: a manual LR request, then kill -9 right after it is taken ----------------------


def _request_file(run_dir: str) -> dict[str, Any] | None:
  try:
    return run_files.read_json(os.path.join(run_dir, manual_lr.REQUEST))
  except (FileNotFoundError, ValueError):
    return None


SHORT = '--config.epochs_scale=0.5'  # 20 epochs, the LR ÷ 4 at 5, 10 and 15: checkpoints every 5


@pytest.mark.slow
@pytest.mark.parametrize('epochs_before, where', [
    (6, 'between_checkpoints'),  # taken at epoch 7's start; the last checkpoint is epoch 5's
    (4, 'at_the_last_checkpoint'),  # taken at epoch 5's start, the update checkpointed just before
])
def test_a_manual_request_killed_right_after_it_is_taken_applies_once_at_that_update(
    epochs_before, where, launcher, decay_state_template, tmp_path):
  del where
  workdir = str(tmp_path / 'killed')
  run_dir = os.path.join(workdir, RUN)
  args = launcher.args(workdir, SHORT, log_every=1)
  process = launcher.start(args, str(tmp_path / 'killed_logs'))
  # Once the run has read requests at the start of epoch `epochs_before`, the next read
  # is at the start of the next epoch.
  process.wait_for(lambda: len(log_lines(os.path.join(run_dir, run_files.METRICS)))
                   >= epochs_before and last_update(run_dir) > epochs_before * UPDATES_PER_EPOCH,
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
    return bool(taken) and bool(log_lines(os.path.join(run_dir, run_files.EVENTS)))

  process.wait_for(taken_and_logged, 'the request taken and its event logged')
  process.kill()
  update = taken[0]['taken_at_update']
  assert taken[0]['id'] == request.id
  # At the next epoch start (or earlier, if a progress line came first).
  assert epochs_before * UPDATES_PER_EPOCH < update <= (epochs_before + 1) * UPDATES_PER_EPOCH
  assert committed_steps(run_dir)[-1] <= update

  # The uninterrupted run: the same request, already taken at the same update.
  straight = str(tmp_path / 'straight')
  os.makedirs(os.path.join(straight, RUN))
  run_files.write_json(os.path.join(straight, RUN, manual_lr.REQUEST), taken[0])
  succeeded(launcher.run(launcher.args(straight, SHORT, log_every=1)))
  succeeded(launcher.run(args))

  want = run_results(os.path.join(straight, RUN), decay_state_template)
  got = run_results(run_dir, decay_state_template)
  (event,) = want.events
  assert (event['reason'], event['update'], event['learning_rate']) == ('manual', update, 0.01)
  lrs = lambda r: [(x['update'], x['learning_rate']) for x in r.train_log]
  assert len(lrs(got)) == TOTAL_UPDATES // 2
  assert lrs(got) == lrs(want), first_difference(lrs(got), lrs(want))
  assert lrs(got)[update - 1][1] != lrs(got)[update][1]  # the change took effect there
  assert_same_results(got, want, logs=('metrics', 'train_log'))
  assert not os.path.exists(os.path.join(run_dir, manual_lr.REQUEST))  # acknowledged
  assert got.events == [event]
