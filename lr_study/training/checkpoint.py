"""Checkpoints of a run through orbax: the train state and the loop's own state, verified.

The loop state holds what a resumed run needs to continue exactly: the epochs done, the
update count, the dynamic schedules' controllers, any batch sizes chosen at run time and
the manual LR request last applied. The batch order needs nothing stored: each epoch's
permutation is a function of (seed, epoch).

Layout: ``RUN_DIR/checkpoints/<step>/`` per checkpoint (orbax's ``CheckpointManager``),
the last ``keep`` of them kept. Each holds

* ``state``: the train state's arrays (``flax.serialization.to_state_dict`` of host
  arrays; orbax's ``PyTreeSave``);
* ``loop_state``: the loop state as strict JSON (non-finite floats stored as
  ``{"__float__": "Infinity"}`` and given back as floats);
* in its own metadata (``_CHECKPOINT_METADATA``), a SHA-256 over the step, every
  array's name, dtype, shape and bytes, and the loop state's canonical JSON.

Orbax commits a step atomically: it writes ``<step>.orbax-checkpoint-tmp-*`` and
renames it (locally; on ``gs://`` a ``commit_success.txt`` marks the step whole). A save
killed half-way leaves such a temporary directory, which no restore reads and the next
save deletes. ``restore`` takes the latest step whose arrays, loop state and digest all
load and agree, and names the newer ones it skipped.

A step's name that is no directory (a symbolic link, a file) is unusable too: skipped
with its line, and deleted by the next save of its step. A disk that fills up during a
save is an ``OSError`` (``ENOSPC``), the step left uncommitted.

One manager per run: ``lr_study.runtime.run_dir.RunDirectory`` opens the run's
``Checkpoints`` (one orbax ``CheckpointManager``) with the run and closes it with the run;
opening writes nothing, so a run refused after its restore leaves every file as it was.

Quiet: a damaged step reaches the user as one line (the step and why it was skipped), not
as orbax's log lines or tracebacks (``lr_study.training.orbax_quiet``).

Filesystems: local paths and ``gs://``, which orbax writes itself (through etils.epath and
tensorstore). Any other URL (``ram://``, ``s3://``) is a one-line ConfigError.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from typing import Any, NamedTuple

import flax.serialization
import flax.traverse_util
import jax
import numpy as np
import orbax.checkpoint as ocp

from lr_study.errors import ConfigError
from lr_study.runtime import run_files, strict_json
from lr_study.runtime.workdir import check_checkpoint_filesystem
from lr_study.training import orbax_quiet

KEEP = 2  # checkpoints kept: the latest and one to fall back on
_FORMAT = 1  # of the digest in each step's custom metadata
_STEP_METADATA = '_CHECKPOINT_METADATA'  # orbax's per-step metadata file, holding the digest


class Restored(NamedTuple):
  """A restored checkpoint."""

  state: Any  # shaped like the template, host NumPy arrays
  loop_state: dict[str, Any]
  step: int
  skipped: str | None  # one line naming newer checkpoints that were unusable, or None


def directory(run_dir: str) -> str:
  """Where ``run_dir``'s checkpoints are; absolute, as orbax needs, for a local path."""
  local = run_files.scheme(os.fspath(run_dir)) is None
  return os.path.join(os.path.abspath(run_dir) if local else os.fspath(run_dir),
                      run_files.CHECKPOINTS)


# --- Digest and structure -----------------------------------------------------------------


def _flat(state_dict: dict[str, Any]) -> dict[str, Any]:
  """The arrays by path; a field that is None (``TrainState.example_loss`` unkept) has none."""
  flat = flax.traverse_util.flatten_dict(state_dict, sep='/')
  return {name: array for name, array in flat.items() if array is not None}


def _digest(step: int, arrays: dict[str, np.ndarray], loop_json: str) -> str:
  """SHA-256 of the step, each array's name, dtype, shape and bytes, and the loop state."""
  h = hashlib.sha256(f'lr_study checkpoint {_FORMAT} step {step}\n'.encode())
  for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name])
    h.update(strict_json.canonical([name, a.dtype.str, list(a.shape)]).encode())
    h.update(a.tobytes())
  h.update(loop_json.encode())
  return h.hexdigest()


def _host_state_dict(state: Any) -> dict[str, Any]:
  """``state`` as a nested dict of host NumPy arrays (0-d arrays for scalars)."""
  return jax.tree.map(np.asarray, flax.serialization.to_state_dict(state))


def _mismatch(saved: dict[str, Any], expected: dict[str, np.ndarray]) -> str | None:
  """How the saved arrays' metadata differs from the template, or None."""
  for name in sorted(set(saved) | set(expected)):
    if name not in saved:
      return f'no array {name}'
    if name not in expected:
      return f'unexpected array {name}'
    have, want = saved[name], expected[name]
    if tuple(have.shape) != want.shape or np.dtype(have.dtype) != want.dtype:
      return (f'{name} is {tuple(have.shape)} {np.dtype(have.dtype)}, '
              f'expected {want.shape} {want.dtype}')
  return None


def _first_line(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else ''
  return f'{type(error).__name__}: {text}'[:160]


class _Unusable(Exception):
  """A checkpoint step that cannot be restored, with the reason."""


# --- The manager --------------------------------------------------------------------------


class Checkpoints:
  """The checkpoints of one run directory through one orbax ``CheckpointManager``:
  ``restore`` takes the latest usable one, ``save`` keeps the last ``keep``. Opening writes
  nothing; a save creates the directory and deletes leftovers of killed saves first.

  Only the writing process uses it (the others receive what it restores), so orbax runs
  here as a one-process manager: no barrier with the other processes.
  """

  def __init__(self, run_dir: str, keep: int = KEEP):
    if keep < 1:
      raise ConfigError(f'checkpoints to keep must be >= 1, got {keep}')
    check_checkpoint_filesystem(run_dir)
    self.directory = directory(run_dir)
    me = jax.process_index()
    # Orbax's own read_only mode logs three warnings; a manager that creates and cleans
    # up nothing when opened writes nothing before its first save.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=False, cleanup_tmp_directories=False,
        enable_async_checkpointing=False, save_root_metadata=False,
        multiprocessing_options=ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}))
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={'state': ocp.PyTreeCheckpointHandler(
                           type_handler_registry=orbax_quiet.REGISTRY),
                       'loop_state': ocp.JsonCheckpointHandler()})

  def steps(self) -> list[int]:
    """The committed steps, oldest first (temporary directories are not steps, nor a step's
    name that is no directory)."""
    self._manager.reload()
    return sorted(set(self._manager.all_steps()) - set(self.not_directories()))

  def not_directories(self) -> dict[int, str]:
    """The entries named as steps that are no directory (a symbolic link, a file), each
    with what it is: unusable, and replaced by the next save of their step."""
    return {int(name): kind for name, kind in run_files.not_directories(self.directory).items()
            if name.isdigit()}

  def save(self, step: int, state: Any, loop_state: dict[str, Any]) -> None:
    """Saves ``state`` (host arrays) and ``loop_state`` (JSON-able) as ``step``, then
    deletes all but the last ``keep``. Steps at or after ``step`` are deleted first: they
    belong to a run that was resumed from an earlier checkpoint."""
    arrays = _host_state_dict(state)
    encoded = strict_json.reversible(loop_state)
    digest = _digest(step, _flat(arrays), strict_json.canonical(encoded))
    run_files.make_dirs(self.directory)
    for leftover in ocp.utils.tmp_checkpoints(self.directory):  # of killed saves
      leftover.get().rmtree()
    for old in [old for old in self.not_directories() if old >= step]:
      run_files.remove(os.path.join(self.directory, str(old)))
    for old in self.steps():
      if old >= step:
        self._manager.delete(old)
    try:
      self._manager.save(
          step, args=ocp.args.Composite(state=ocp.args.PyTreeSave(arrays),
                                        loop_state=ocp.args.JsonSave(encoded)),
          custom_metadata={'sha256': digest, 'format': _FORMAT}, force=True)
      self._manager.wait_until_finished()
    except ValueError as e:  # tensorstore's status errors
      if 'RESOURCE_EXHAUSTED' not in str(e):
        raise
      raise OSError(errno.ENOSPC, 'No space left on device', self.directory) from None

  def _restore_step(self, step: int, template: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``step``'s (arrays, loop state), verified; _Unusable saying why not."""
    path = os.path.join(self.directory, str(step), _STEP_METADATA)
    if not run_files.exists(path):
      raise _Unusable(f'no integrity digest: its {_STEP_METADATA} is missing')
    try:  # orbax reads an unreadable file as no metadata; say what it is
      json.loads(run_files.read_bytes(path))
    except (OSError, ValueError) as e:
      raise _Unusable(f'unreadable {_STEP_METADATA}: {_first_line(e)}') from e
    try:
      digest = (self._manager.metadata(step).custom_metadata or {}).get('sha256')
    except Exception as e:  # pylint: disable=broad-except
      raise _Unusable(f'unreadable {_STEP_METADATA}: {_first_line(e)}') from e
    if not digest:
      raise _Unusable(f'no integrity digest in its {_STEP_METADATA}')
    try:
      saved = self._manager.item_metadata(step)['state']
      saved = None if saved is None else _flat(dict(saved.tree))
    except Exception as e:  # pylint: disable=broad-except
      raise _Unusable(f'unreadable array metadata: {_first_line(e)}') from e
    if saved is None:
      raise _Unusable('unreadable array metadata')
    mismatch = _mismatch(saved, _flat(template))
    if mismatch:
      raise _Unusable(f'does not match the train state: {mismatch}')
    try:
      restored = self._manager.restore(
          step, args=ocp.args.Composite(
              state=ocp.args.PyTreeRestore(
                  template, restore_args=ocp.checkpoint_utils.construct_restore_args(template)),
              loop_state=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except
      raise _Unusable(f'unreadable arrays or loop state: {_first_line(e)}') from e
    arrays, encoded = restored['state'], restored['loop_state']
    if _digest(step, _flat(arrays), strict_json.canonical(encoded)) != digest:
      raise _Unusable('its arrays or loop state differ from the SHA-256 saved with them')
    return arrays, strict_json.from_reversible(encoded)

  def restore(self, template: Any) -> Restored | None:
    """The latest usable checkpoint, its state shaped like ``template``; None if there
    are none; a one-line ConfigError naming the directory if none is usable."""
    expected = _host_state_dict(template)
    skipped, odd = [], self.not_directories()
    for step in sorted({*self.steps(), *odd}, reverse=True):
      if step in odd:
        skipped.append(f'step {step} (not a directory but {odd[step]})')
        continue
      try:
        arrays, loop_state = self._restore_step(step, expected)
      except _Unusable as e:
        skipped.append(f'step {step} ({e})')
        continue
      note = (f'checkpoint {"; ".join(skipped)} in {self.directory} unusable, resumed from '
              f'step {step}') if skipped else None
      return Restored(flax.serialization.from_state_dict(template, arrays), loop_state,
                      step, note)
    if skipped:
      raise ConfigError(f'no usable checkpoint in {self.directory}: {"; ".join(skipped)}')
    return None

  def close(self) -> None:
    self._manager.close()

  def __enter__(self) -> Checkpoints:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()


def restore(run_dir: str, template: Any) -> Restored | None:
  """The latest usable checkpoint of ``run_dir`` (see ``Checkpoints.restore``), through a
  manager of its own (for tests and analysis; a run restores through its RunDirectory's);
  reads only."""
  if not run_files.exists(directory(run_dir)):
    return None
  with Checkpoints(run_dir) as checkpoints:
    return checkpoints.restore(template)
