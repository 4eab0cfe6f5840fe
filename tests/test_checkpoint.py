"""Orbax checkpoints of a run: bit-exact round trips, the last N kept, every kind of
corruption caught on restore with a fallback to the previous checkpoint, and the
leftover of a killed save ignored, then cleaned up."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap

import flax.struct
import jax
import numpy as np
import optax
import pytest

from lr_study.errors import ConfigError
from lr_study.training import checkpoint


@flax.struct.dataclass
class _State:
  step: np.ndarray
  params: dict
  opt_state: optax.OptState


def _state(step: int) -> _State:
  """A train state whose every value depends on ``step``."""
  rng = np.random.default_rng(step)
  params = {'dense': {'kernel': rng.standard_normal((128, 64), np.float32),
                      'bias': rng.standard_normal(64).astype(np.float32)},
            'scale': np.float64(step) / 3}
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
  opt_state = jax.tree.map(lambda x: np.asarray(x) + step, tx.init(params))
  return _State(step=np.asarray(step, np.int32), params=params, opt_state=opt_state)


def _loop_state(step: int) -> dict:
  return {'loop': {'epoch': step, 'update': 10 * step, 'wall_time': 0.1 * step},
          'plateau': {'best': float('inf'), 'last': float('nan'), 'low': float('-inf')},
          'batch_control': {'changes': [[2, 128]]}, 'manual_request': 'abc'}


def _assert_same(a, b) -> None:
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def _assert_loop_state(restored: dict, step: int) -> None:
  expected = _loop_state(step)
  assert np.isnan(restored['plateau'].pop('last'))
  expected['plateau'].pop('last')
  assert restored == expected


def _files(run_dir: str) -> dict[str, tuple[int, int]]:
  """Every file and directory under ``run_dir`` with its size and mtime."""
  found = {}
  for root, dirs, files in os.walk(run_dir):
    for name in dirs + files:
      path = os.path.join(root, name)
      found[path] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
  return found


def _array_file(run_dir: str, step: int) -> str:
  """The largest file of ``step``'s arrays: where the kernel's 32 KiB are, compressed."""
  state_dir = os.path.join(checkpoint.directory(run_dir), str(step), 'state')
  paths = [os.path.join(root, name) for root, _, files in os.walk(state_dir) for name in files]
  path = max(paths, key=os.path.getsize)
  assert os.path.getsize(path) > 16 * 1024, 'not the array data'  # compressed, not much
  return path


def _truncate(run_dir: str, step: int) -> None:
  path = _array_file(run_dir, step)
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _flip_bit(run_dir: str, step: int) -> None:
  path = _array_file(run_dir, step)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0x10
  open(path, 'wb').write(bytes(data))


def _garbage(run_dir: str, step: int) -> None:
  path = _array_file(run_dir, step)
  open(path, 'wb').write(np.random.default_rng(0).bytes(os.path.getsize(path)))


def _missing_file(run_dir: str, step: int) -> None:
  os.remove(_array_file(run_dir, step))


def _edited_loop_state(run_dir: str, step: int) -> None:
  path = os.path.join(checkpoint.directory(run_dir), str(step), 'loop_state', 'metadata')
  text = open(path).read()
  assert '"update": 30' in text
  open(path, 'w').write(text.replace('"update": 30', '"update": 31'))


def _missing_digest(run_dir: str, step: int) -> None:
  os.remove(os.path.join(checkpoint.directory(run_dir), str(step), '_CHECKPOINT_METADATA'))


CORRUPTIONS = {'truncated': _truncate, 'flipped_bit': _flip_bit, 'garbage': _garbage,
               'missing_file': _missing_file, 'edited_loop_state': _edited_loop_state,
               'missing_digest': _missing_digest}


def _save_steps(run_dir: str, *steps: int, keep: int = checkpoint.KEEP) -> None:
  with checkpoint.Checkpoints(run_dir, keep) as checkpoints:
    for step in steps:
      checkpoints.save(step, _state(step), _loop_state(step))


def test_save_then_restore_is_bit_exact(tmp_path):
  _save_steps(str(tmp_path), 3)
  restored = checkpoint.restore(str(tmp_path), _state(0))
  assert (restored.step, restored.skipped) == (3, None)
  assert isinstance(restored.state, _State)
  _assert_same(restored.state, _state(3))
  _assert_loop_state(restored.loop_state, 3)


def test_a_relative_run_dir_saves_and_restores(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the default workdir, runs/<config>, is relative
  _save_steps('runs/x/seed_0', 5)
  assert os.path.isdir(tmp_path / 'runs' / 'x' / 'seed_0' / 'checkpoints' / '5')
  _assert_same(checkpoint.restore('runs/x/seed_0', _state(0)).state, _state(5))


def test_checkpoint_json_files_are_strict(tmp_path):
  _save_steps(str(tmp_path), 3)

  def refuse(constant):
    raise ValueError(constant)

  step_dir = os.path.join(checkpoint.directory(str(tmp_path)), '3')
  for name in ('_CHECKPOINT_METADATA', 'loop_state/metadata', 'state/_METADATA'):
    json.loads(open(os.path.join(step_dir, name)).read(), parse_constant=refuse)


def test_restore_without_checkpoints_is_none(tmp_path):
  assert checkpoint.restore(str(tmp_path), _state(0)) is None
  assert os.listdir(tmp_path) == []


def test_the_last_two_checkpoints_are_kept_by_default(tmp_path):
  _save_steps(str(tmp_path), 10, 20, 30)
  assert sorted(os.listdir(checkpoint.directory(str(tmp_path)))) == ['20', '30']


def test_the_number_of_checkpoints_kept_is_configurable(tmp_path):
  _save_steps(str(tmp_path), 10, 20, 30, 40, keep=3)
  with checkpoint.Checkpoints(str(tmp_path), keep=3) as checkpoints:
    assert checkpoints.steps() == [20, 30, 40]


@pytest.mark.parametrize('kind', sorted(CORRUPTIONS))
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, kind):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  CORRUPTIONS[kind](run_dir, 3)
  restored = checkpoint.restore(run_dir, _state(0))
  assert restored.step == 2
  _assert_same(restored.state, _state(2))
  _assert_loop_state(restored.loop_state, 2)
  assert restored.skipped.startswith('checkpoint step 3 (')
  assert restored.skipped.endswith(f') in {checkpoint.directory(run_dir)} unusable, '
                                   'resumed from step 2')
  assert '\n' not in restored.skipped


def test_restore_leaves_every_file_as_it_was(tmp_path):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  _garbage(run_dir, 3)
  os.makedirs(os.path.join(checkpoint.directory(run_dir), '4.orbax-checkpoint-tmp-1'))
  before = _files(run_dir)
  assert checkpoint.restore(run_dir, _state(0)).step == 2
  assert _files(run_dir) == before


def test_no_usable_checkpoint_is_a_one_line_error_naming_the_directory(tmp_path):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  _garbage(run_dir, 3)
  _missing_digest(run_dir, 2)
  with pytest.raises(ConfigError) as error:
    checkpoint.restore(run_dir, _state(0))
  message = str(error.value)
  assert message.startswith(f'no usable checkpoint in {checkpoint.directory(run_dir)}: '
                            'step 3 (')
  assert '; step 2 (no integrity digest: its _CHECKPOINT_METADATA is missing)' in message
  assert '\n' not in message


def test_a_template_of_other_shapes_is_a_one_line_error_naming_the_array(tmp_path):
  _save_steps(str(tmp_path), 3)
  other = _state(0).replace(params={**_state(0).params, 'scale': np.zeros(2)})
  with pytest.raises(ConfigError, match=r'step 3 \(does not match the train state: '
                     r'params/scale is \(\) float64, expected \(2,\) float64\)$'):
    checkpoint.restore(str(tmp_path), other)


def test_a_save_after_a_fallback_replaces_the_abandoned_later_checkpoints(tmp_path):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  _truncate(run_dir, 3)
  assert checkpoint.restore(run_dir, _state(0)).step == 2
  _save_steps(run_dir, 3)
  restored = checkpoint.restore(run_dir, _state(0))
  assert (restored.step, restored.skipped) == (3, None)
  _assert_same(restored.state, _state(3))


def _dangling_link(run_dir: str, step: int) -> None:
  step_dir = os.path.join(checkpoint.directory(run_dir), str(step))
  shutil.rmtree(step_dir)
  os.symlink(os.path.join(run_dir, 'nowhere'), step_dir)


def _link_to_the_previous(run_dir: str, step: int) -> None:
  step_dir = os.path.join(checkpoint.directory(run_dir), str(step))
  shutil.rmtree(step_dir)
  os.symlink(os.path.join(checkpoint.directory(run_dir), str(step - 1)), step_dir)


def _a_file(run_dir: str, step: int) -> None:
  step_dir = os.path.join(checkpoint.directory(run_dir), str(step))
  shutil.rmtree(step_dir)
  open(step_dir, 'w').write('not a checkpoint\n')


NOT_DIRECTORIES = {'a dangling symbolic link': (_dangling_link, 'a symbolic link'),
                   'a symbolic link to another step': (_link_to_the_previous, 'a symbolic link'),
                   'a file': (_a_file, 'a file')}


@pytest.mark.parametrize('kind', sorted(NOT_DIRECTORIES))
def test_a_latest_step_that_is_no_directory_is_skipped_with_its_line(tmp_path, kind):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  corrupt, what = NOT_DIRECTORIES[kind]
  corrupt(run_dir, 3)
  restored = checkpoint.restore(run_dir, _state(0))
  assert restored.step == 2
  _assert_same(restored.state, _state(2))
  assert restored.skipped == (f'checkpoint step 3 (not a directory but {what}) in '
                              f'{checkpoint.directory(run_dir)} unusable, resumed from step 2')


@pytest.mark.parametrize('kind', sorted(NOT_DIRECTORIES))
def test_a_step_that_is_no_directory_is_replaced_by_the_next_save_of_it(tmp_path, kind):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  NOT_DIRECTORIES[kind][0](run_dir, 3)
  _save_steps(run_dir, 3)
  step_dir = os.path.join(checkpoint.directory(run_dir), '3')
  assert os.path.isdir(step_dir) and not os.path.islink(step_dir)
  restored = checkpoint.restore(run_dir, _state(0))
  assert (restored.step, restored.skipped) == (3, None)
  _assert_same(restored.state, _state(3))
  _assert_same(checkpoint.restore(run_dir, _state(0)).state, _state(3))
  assert sorted(os.listdir(checkpoint.directory(run_dir))) == ['2', '3']


def test_only_steps_that_are_no_directory_are_no_usable_checkpoint(tmp_path):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 3)
  _dangling_link(run_dir, 3)
  with pytest.raises(ConfigError, match=r'^no usable checkpoint in .*: step 3 \(not a directory '
                                        r'but a symbolic link\)$'):
    checkpoint.restore(run_dir, _state(0))


def test_a_disk_that_fills_up_during_a_save_is_an_enospc_os_error(tmp_path, monkeypatch):
  def full(*args, **kwargs):
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "params" in OCDBT database at local '
                     'file "...": Failed writing: No space left on device [os_error_code=\'28\']')
  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, 'save', full)
  with pytest.raises(OSError) as error:
    _save_steps(str(tmp_path), 3)
  assert error.value.errno == errno.ENOSPC
  assert error.value.filename == checkpoint.directory(str(tmp_path))


_FULL_DISK_SAVES = textwrap.dedent('''
    import errno, gc, os, sys, time
    sys.path.insert(0, {root!r})
    from absl import logging
    logging.use_absl_handler()  # orbax's log records reach stderr, as under launch.py
    import numpy as np
    from lr_study.training import checkpoint
    rng = np.random.default_rng(0)
    state = {{f'w{{i}}': rng.standard_normal((64, 64)).astype(np.float32) for i in range(40)}}
    for i in range(3):
      try:
        with checkpoint.Checkpoints(os.path.join({disk!r}, str(i))) as checkpoints:
          checkpoints.save(1, state, {{'update': 1}})
      except OSError as e:
        print(errno.errorcode[e.errno])
    time.sleep(0.5)  # the writes orbax abandoned would complete meanwhile
    gc.collect()
''')


@pytest.mark.slow
def test_a_disk_that_fills_up_during_a_save_stops_it_without_orbax_noise(tmp_path):
  """640 KiB of arrays onto a 200 KiB tmpfs: one write of many fails, and the writes still
  in flight must not print tracebacks ("Event loop is closed") when they end."""
  disk = tmp_path / 'disk'
  disk.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', str(disk)],
                    capture_output=True, check=False).returncode:
    pytest.skip('no tmpfs to fill: mounting one needs root')
  try:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.run(
        [sys.executable, '-c', _FULL_DISK_SAVES.format(root=root, disk=str(disk))],
        capture_output=True, text=True, timeout=300, check=False)
  finally:
    subprocess.run(['umount', str(disk)], check=False)
  assert process.returncode == 0, process.stderr[-3000:]
  assert process.stdout == 'ENOSPC\n' * 3
  assert process.stderr == ''


_KILLED_SAVE = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.test_checkpoint import _loop_state, _state
    from lr_study.training import checkpoint
    real_rename = os.rename
    def rename(src, dst, *args, **kwargs):  # orbax's commit: the temporary directory's rename
      if '.orbax-checkpoint-tmp' in os.fspath(src):
        os.kill(os.getpid(), signal.SIGKILL)
      return real_rename(src, dst, *args, **kwargs)
    os.rename = rename
    with checkpoint.Checkpoints({run_dir!r}) as checkpoints:
      checkpoints.save(3, _state(3), _loop_state(3))
''')


@pytest.mark.slow
def test_a_killed_save_is_ignored_by_restore_and_cleaned_up_by_the_next_save(tmp_path):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  process = subprocess.run([sys.executable, '-c', _KILLED_SAVE.format(root=root, run_dir=run_dir)],
                           capture_output=True, timeout=300, check=False)
  assert process.returncode == -9, process.stderr.decode()[-2000:]
  leftovers = [n for n in os.listdir(checkpoint.directory(run_dir)) if n != '2']
  assert leftovers and all('.orbax-checkpoint-tmp' in n for n in leftovers)
  restored = checkpoint.restore(run_dir, _state(0))
  assert (restored.step, restored.skipped) == (2, None)
  _save_steps(run_dir, 3)
  assert sorted(os.listdir(checkpoint.directory(run_dir))) == ['2', '3']


def _garbage_digest(run_dir: str, step: int) -> None:
  path = os.path.join(checkpoint.directory(run_dir), str(step), '_CHECKPOINT_METADATA')
  open(path, 'wb').write(b'{"custom_metadata": {"sha256": \x00\xff')


def test_an_unreadable_digest_is_named_as_such(tmp_path):
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  _garbage_digest(run_dir, 3)
  restored = checkpoint.restore(run_dir, _state(0))
  assert restored.step == 2
  assert restored.skipped.startswith('checkpoint step 3 (unreadable _CHECKPOINT_METADATA: ')


_RESTORES = textwrap.dedent('''
    import gc, sys, time
    sys.path.insert(0, {root!r})
    from absl import logging
    logging.use_absl_handler()  # orbax's log records reach stderr, as under launch.py
    from tests.test_checkpoint import _state
    from lr_study.errors import ConfigError
    from lr_study.training import checkpoint
    for _ in range(5):
      try:
        checkpoint.restore({run_dir!r}, _state(0))
      except ConfigError as e:
        print(str(e)[:len('no usable checkpoint')])
    time.sleep(0.5)  # the reads orbax abandoned complete meanwhile
    gc.collect()  # and its failed tasks are collected
''')


@pytest.mark.slow
def test_unusable_checkpoints_are_named_in_one_line_without_orbax_noise(tmp_path):
  """A truncated array file fails one read of many: orbax gives up at the first error,
  and the reads still in flight must not print tracebacks ("Event loop is closed") nor
  their failed tasks "Task exception was never retrieved"; an unreadable step metadata
  file must not bring orbax's "Failed to read Metadata file" lines."""
  run_dir = str(tmp_path)
  _save_steps(run_dir, 2, 3)
  _truncate(run_dir, 3)
  _garbage_digest(run_dir, 2)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  process = subprocess.run([sys.executable, '-c', _RESTORES.format(root=root, run_dir=run_dir)],
                           capture_output=True, text=True, timeout=300, check=False)
  assert process.returncode == 0, process.stderr[-3000:]
  assert process.stdout == 'no usable checkpoint\n' * 5
  assert process.stderr == ''


_TWO_PROCESSES = textwrap.dedent('''
    import sys
    sys.path.insert(0, {root!r})
    import jax
    from jax.experimental import multihost_utils
    from lr_study.runtime import hosts
    hosts.initialize({address!r}, 2, int(sys.argv[1]))
    from tests.test_checkpoint import _loop_state, _state
    from lr_study.training import checkpoint
    if jax.process_index() == 0:  # the writer alone, as in the loop
      with checkpoint.Checkpoints({run_dir!r}) as checkpoints:
        checkpoints.save(3, _state(3), _loop_state(3))
      assert checkpoint.restore({run_dir!r}, _state(0)).step == 3
    multihost_utils.sync_global_devices('done')
    print('done', jax.process_index())
''')


def _free_port() -> int:
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_the_writing_process_saves_and_restores_alone_among_several(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  script = _TWO_PROCESSES.format(root=root, address=f'127.0.0.1:{_free_port()}',
                                 run_dir=str(tmp_path))
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1',
             JAX_PLATFORMS='cpu')
  processes = [subprocess.Popen([sys.executable, '-c', script, str(i)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
  outputs = [p.communicate(timeout=300) for p in processes]
  for i, (process, (out, err)) in enumerate(zip(processes, outputs)):
    assert process.returncode == 0 and out.endswith(f'done {i}\n'), err[-2000:]
  assert sorted(os.listdir(checkpoint.directory(str(tmp_path)))) == ['3']
