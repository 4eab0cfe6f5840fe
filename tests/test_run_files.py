"""Run files on local disk and on TensorFlow's in-memory ``ram://`` filesystem: atomic
whole files, line-by-line logs, strict JSON, and a workdir checked before any compute."""

from __future__ import annotations

import json
import math
import os
import stat
import time
import uuid

import numpy as np
import pytest
import tensorflow as tf  # registers ram://

from lr_study.errors import ConfigError
from lr_study.runtime import run_files, strict_json
from lr_study.runtime import workdir
from lr_study.runtime.lock import RunLock
from lr_study.runtime.workdir import check_workdir


def _strict_loads(text: str):
  def refuse(constant: str):
    raise ValueError(f'non-strict JSON constant {constant}')
  return json.loads(text, parse_constant=refuse)


@pytest.fixture
def ram_dir() -> str:
  path = f'ram://test_run_files/{uuid.uuid4().hex}'
  tf.io.gfile.makedirs(path)
  return path


@pytest.fixture(params=['local', 'ram'])
def any_dir(request, tmp_path, ram_dir) -> str:
  return str(tmp_path) if request.param == 'local' else ram_dir


def test_write_json_round_trips_on_local_and_ram_filesystems(any_dir):
  path = os.path.join(any_dir, 'plan.json')
  run_files.write_json(path, {'phases': [{'batch_size': 64}], 'total_updates': 7})
  assert run_files.read_json(path) == {'phases': [{'batch_size': 64}], 'total_updates': 7}


def test_write_atomic_leaves_only_the_target_file(any_dir):
  path = os.path.join(any_dir, 'summary.json')
  run_files.write_atomic(path, 'old')
  run_files.write_atomic(path, 'new')
  assert run_files.read_bytes(path) == b'new'
  assert tf.io.gfile.listdir(any_dir) == ['summary.json']


def test_write_atomic_that_fails_keeps_the_old_file_whole(tmp_path, monkeypatch):
  path = str(tmp_path / 'summary.json')
  run_files.write_atomic(path, 'old')

  def crash(src, dst):
    raise OSError('disk gone')

  monkeypatch.setattr(os, 'replace', crash)
  with pytest.raises(OSError):
    run_files.write_atomic(path, 'new')
  assert run_files.read_bytes(path) == b'old'
  assert os.listdir(tmp_path) == ['summary.json']


def test_written_json_and_jsonl_are_strict_with_null_for_non_finite_numbers(any_dir):
  record = {'train_loss': float('nan'), 'best': float('inf'), 'low': np.float32('-inf'),
            'update': np.int64(3), 'accuracy': np.float32(0.5), 'widths': (32, 16)}
  run_files.write_json(os.path.join(any_dir, 'summary.json'), record)
  with run_files.JsonlWriter(os.path.join(any_dir, run_files.METRICS)) as log:
    log.write(record)
  expected = {'train_loss': None, 'best': None, 'low': None, 'update': 3, 'accuracy': 0.5,
              'widths': [32, 16]}
  text = run_files.read_bytes(os.path.join(any_dir, 'summary.json')).decode()
  assert _strict_loads(text) == expected
  (line,) = run_files.read_bytes(os.path.join(any_dir, run_files.METRICS)).decode().splitlines()
  assert _strict_loads(line) == expected


def test_mark_non_finite_records_what_each_null_stood_for():
  record = {'update': 10, 'train_loss': float('nan'),
            'validation': {'loss': float('inf'), 'accuracy': 0.25}, 'lrs': [0.1, -math.inf]}
  marked = strict_json.mark_non_finite(record)
  assert marked['non_finite'] == {'train_loss': 'NaN', 'validation.loss': 'Infinity',
                                  'lrs.1': '-Infinity'}
  assert strict_json.mark_non_finite({'update': 1, 'loss': 0.5}) == {'update': 1, 'loss': 0.5}


def test_jsonl_writer_appends_one_line_per_record_after_existing_ones(any_dir):
  path = os.path.join(any_dir, run_files.EVENTS)
  with run_files.JsonlWriter(path) as log:
    log.write({'update': 1})
  with run_files.JsonlWriter(path) as log:
    log.write({'update': 2})
    assert run_files.read_jsonl(path) == [{'update': 1}, {'update': 2}]  # flushed at once
  assert run_files.read_bytes(path) == b'{"update": 1}\n{"update": 2}\n'


def test_jsonl_writer_rewrites_the_whole_log_where_the_filesystem_cannot_append(
    ram_dir, monkeypatch):
  monkeypatch.setattr(run_files, 'OBJECT_STORES', frozenset({'ram'}))  # ram:// as gs://
  real_gfile = tf.io.gfile.GFile

  def object_store_file(path, mode='r'):
    assert 'a' not in mode, 'an object store cannot append'
    if 'w' in mode and tf.io.gfile.exists(path):
      tf.io.gfile.remove(path)  # an upload replaces the object (ram:// 'w' would append)
    return real_gfile(path, mode)

  monkeypatch.setattr(tf.io.gfile, 'GFile', object_store_file)
  path = os.path.join(ram_dir, run_files.METRICS)
  run_files.write_atomic(path, '{"update": 1}\n')
  with run_files.JsonlWriter(path) as log:
    log.write({'update': 2})
    log.write({'update': 3})
  assert run_files.read_jsonl(path) == [{'update': 1}, {'update': 2}, {'update': 3}]
  assert tf.io.gfile.listdir(ram_dir) == [run_files.METRICS]


def test_read_jsonl_skips_a_torn_last_line(any_dir):
  path = os.path.join(any_dir, run_files.TRAIN_LOG)
  run_files.write_atomic(path, '{"update": 1}\n{"update": 2}\n{"upd')
  assert run_files.read_jsonl(path) == [{'update': 1}, {'update': 2}]


def test_read_jsonl_of_a_missing_log_is_empty(any_dir):
  assert run_files.read_jsonl(os.path.join(any_dir, 'absent.jsonl')) == []


def test_read_jsonl_names_a_torn_last_line_to_its_warn(any_dir):
  path = os.path.join(any_dir, run_files.METRICS)
  run_files.write_atomic(path, '{"update": 1}\n{"update": 2}\n{"upd')
  warned = []
  assert run_files.read_jsonl(path, warn=warned.append) == [{'update': 1}, {'update': 2}]
  assert warned == [f'{path} line 3: a torn last record, skipped']


def test_read_jsonl_refuses_a_damaged_line_naming_the_file_and_the_line(any_dir):
  path = os.path.join(any_dir, run_files.METRICS)
  run_files.write_atomic(path, '{"update": 1}\n{"update": }\n{"update": 3}\n')
  with pytest.raises(ConfigError, match=rf'^{path} line 2 is not JSON: Expecting value'):
    run_files.read_jsonl(path)


def test_read_jsonl_refuses_a_line_that_is_json_but_no_record(any_dir):
  path = os.path.join(any_dir, run_files.METRICS)
  run_files.write_atomic(path, '{"update": 1}\n[1, 2]\n')
  with pytest.raises(ConfigError, match=rf"^{path} line 2 is not a JSON record: '\[1, 2\]'"):
    run_files.read_jsonl(path)


def test_read_jsonl_reads_only_the_first_records_asked_for(any_dir):
  path = os.path.join(any_dir, run_files.METRICS)
  run_files.write_atomic(path, '{"update": 1}\n{"update": 2}\ngarbage\n{"upd')
  assert run_files.read_jsonl(path, first=2) == [{'update': 1}, {'update': 2}]


def test_read_json_refuses_a_file_that_is_not_json_naming_it(any_dir):
  path = os.path.join(any_dir, run_files.SUMMARY)
  run_files.write_atomic(path, '{"updates": 3')
  with pytest.raises(ConfigError, match=rf'^{path} is not JSON: Expecting'):
    run_files.read_json(path)


def test_not_directories_names_links_and_files_among_the_entries(tmp_path):
  os.makedirs(tmp_path / '1')
  os.symlink(tmp_path / '1', tmp_path / '2')
  os.symlink(tmp_path / 'nowhere', tmp_path / '3')
  (tmp_path / '4').write_text('x')
  assert run_files.not_directories(str(tmp_path)) == {
      '2': 'a symbolic link', '3': 'a symbolic link', '4': 'a file'}


def test_checkpoint_steps_are_the_step_names_oldest_first(tmp_path):
  for name in ('10', '9', '11.orbax-checkpoint-tmp-1'):
    os.makedirs(tmp_path / run_files.CHECKPOINTS / name)
  (tmp_path / run_files.CHECKPOINTS / '12').write_text('not a directory')
  assert run_files.checkpoint_steps(str(tmp_path)) == [9, 10, 12]
  assert run_files.checkpoint_steps(str(tmp_path / 'absent')) == []


def test_check_workdir_creates_a_missing_local_directory(tmp_path):
  path = str(tmp_path / 'runs' / 'study')
  assert check_workdir(path) == path
  assert os.path.isdir(path) and os.listdir(path) == []


def test_check_workdir_accepts_a_ram_directory(ram_dir):
  path = os.path.join(ram_dir, 'study')
  assert check_workdir(path) == path
  assert tf.io.gfile.isdir(path) and tf.io.gfile.listdir(path) == []


def test_check_workdir_refuses_a_file(tmp_path):
  path = tmp_path / 'file'
  path.write_text('x')
  with pytest.raises(ConfigError, match=r"^--workdir '.*file' is not a usable directory: "
                     r'it is a file, not a directory$'):
    check_workdir(str(path))


def test_check_workdir_refuses_a_directory_below_a_file(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(ConfigError, match=r"^--workdir '.*file/sub' is not a usable directory"):
    check_workdir(str(tmp_path / 'file' / 'sub'))


def test_check_workdir_refuses_an_unwritable_directory(tmp_path):
  if os.geteuid() == 0:  # root writes anywhere a mode bit forbids; not into sysfs
    path = '/sys'
  else:
    path = str(tmp_path / 'read_only')
    os.mkdir(path, stat.S_IRUSR | stat.S_IXUSR)
  with pytest.raises(ConfigError, match=r'is not a usable directory: .*[Pp]ermission denied'):
    check_workdir(path)


def test_check_workdir_refuses_an_unknown_scheme_without_a_local_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ConfigError, match=r"^--workdir 'foo://bucket/x': no filesystem for "
                     r"scheme 'foo' \(supported: .*gs://.*\)"):
    check_workdir('foo://bucket/x')
  assert os.listdir(tmp_path) == []


def test_check_workdir_refuses_a_url_missing_a_slash_without_a_local_folder(
    tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ConfigError, match=r"^--workdir 'gs:/bucket/x' is not a URL"):
    check_workdir('gs:/bucket/x')
  assert os.listdir(tmp_path) == []


def test_check_workdir_gives_up_on_a_filesystem_that_does_not_answer_in_time(
    ram_dir, monkeypatch):
  monkeypatch.setattr(workdir, '_probe', lambda path: time.sleep(30))
  start = time.monotonic()
  with pytest.raises(ConfigError, match=r"^--workdir 'ram://.*' did not answer within 0.2 s"):
    check_workdir(ram_dir, timeout_s=0.2)
  assert time.monotonic() - start < 5


def test_error_messages_are_one_line(tmp_path):
  (tmp_path / 'file').write_text('x')
  for path in (str(tmp_path / 'file'), 'foo://x', 'gs:/x', ''):
    with pytest.raises(ConfigError) as error:
      check_workdir(path)
    assert '\n' not in str(error.value)


# --- --restart: the workdir moved aside under the lock of each of its runs ---------------


def _study(path) -> dict[str, bytes]:
  """A study directory with two runs; every file's content by relative path."""
  for run in ('decay/seed_0', 'decay/seed_1'):
    os.makedirs(path / run / 'checkpoints' / '10')
    (path / run / run_files.METRICS).write_text('{"update": 10}\n')
  (path / 'study_config.json').write_text('{}\n')
  return _contents(path)


def _contents(path) -> dict[str, bytes]:
  return {os.path.relpath(os.path.join(d, n), path): open(os.path.join(d, n), 'rb').read()
          for d, _, names in os.walk(path) for n in names}


def test_restart_moves_the_workdir_aside_whole_and_leaves_no_lock(tmp_path):
  before = _study(tmp_path / 'study')
  moved = workdir.move_aside(str(tmp_path / 'study'))
  assert moved.startswith(str(tmp_path / 'study.old-'))
  assert not os.path.exists(tmp_path / 'study') and _contents(moved) == before


def test_restart_refuses_while_a_run_holds_its_lock_and_moves_nothing(tmp_path):
  before = _study(tmp_path / 'study')
  run_dir = str(tmp_path / 'study' / 'decay' / 'seed_1')
  with RunLock(run_dir):  # a run training there
    locked = _contents(tmp_path / 'study')
    with pytest.raises(ConfigError) as error:
      workdir.move_aside(str(tmp_path / 'study'))
    assert _contents(tmp_path / 'study') == locked
  message = str(error.value)
  assert message.startswith(f'--restart: run_dir {run_dir} is in use by pid {os.getpid()} ')
  assert message.endswith('; stop that run first') and '\n' not in message
  assert _contents(tmp_path / 'study') == before
  assert os.listdir(tmp_path) == ['study']


def test_restart_of_an_empty_or_missing_workdir_moves_nothing(tmp_path):
  os.makedirs(tmp_path / 'empty')
  assert workdir.move_aside(str(tmp_path / 'empty')) is None
  assert workdir.move_aside(str(tmp_path / 'missing')) is None
  assert os.listdir(tmp_path) == ['empty']


def test_two_restarts_within_a_second_keep_both_old_studies(tmp_path):
  first = workdir.move_aside(str(_study(tmp_path / 'study') and tmp_path / 'study'))
  second = workdir.move_aside(str(_study(tmp_path / 'study') and tmp_path / 'study'))
  assert first != second and os.path.isdir(first) and os.path.isdir(second)
