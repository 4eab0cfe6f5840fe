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


def test_truncate_jsonl_keeps_the_accepted_records_and_drops_a_torn_line(any_dir):
  path = os.path.join(any_dir, run_files.METRICS)
  run_files.write_atomic(path, '{"update": 1}\n{"update": 2}\n{"update": 3}\n{"upd')
  run_files.truncate_jsonl(path, lambda r: r['update'] <= 2)
  assert run_files.read_bytes(path) == b'{"update": 1}\n{"update": 2}\n'


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
