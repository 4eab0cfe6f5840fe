"""Where orbax reads and writes a run's checkpoints: the run's own directory, or a local
staging copy of it mirrored with ``tf.io.gfile``.

Orbax names paths through etils.epath and writes arrays through tensorstore, which know
local paths and ``gs://`` only. On those, :func:`open_directory` gives a :class:`Direct`:
orbax works in the run's ``checkpoints/`` directory itself. On any other filesystem
TensorFlow reads and writes (``ram://``, ``s3://``, ``hdfs://``) it gives a
:class:`Mirror`: orbax works in a local staging directory (a ``tempfile`` directory,
removed by ``close``) that mirrors the run's committed steps:

* ``pull`` copies into staging each committed step of the run it does not hold yet and
  drops the staged steps the run no longer has;
* ``push(step)``, after orbax has saved ``step`` in staging (and deleted there the steps
  beyond its ``max_to_keep``), deletes the run's steps at or after ``step`` and its
  uncommitted ones, copies the step file by file, writes ``mirror_committed.txt`` into
  it last (as orbax marks a whole step with ``commit_success.txt``, which it also writes
  into staging, so the copy cannot take it as its own marker), then deletes the run's
  steps staging no longer holds.

A step without its ``mirror_committed.txt`` (a copy killed half-way) is not a step: no
``pull`` reads it and the next ``push`` deletes it. A committed step is deleted marker
first, so a delete killed half-way leaves such a leftover, never a torn step. Each
``Checkpoints`` opened copies the kept steps in once (``checkpoint.save`` opens one per
save): a cost beside the training for the small checkpoints of these studies.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from lr_study.runtime import run_files
from lr_study.runtime.quiet_tf import import_tensorflow

ORBAX_SCHEMES = (None, 'gs')  # run_files.scheme values orbax writes itself (None: local)
COMMIT = 'mirror_committed.txt'  # written last into a mirrored step: the step is whole


def _files(directory: str) -> list[tuple[str, str]]:
  """(path, its path relative to ``directory``) of every file under ``directory``, each
  checked to be there: TF's ``ram://`` lists ``c/11``'s first name among ``c/1``'s files."""
  gfile = run_files.gfile()
  return [(path, os.path.relpath(path, directory))
          for root, _, names in gfile.walk(directory)
          for path in (os.path.join(root, name) for name in names) if gfile.exists(path)]


def _copy_tree(src: str, dst: str) -> None:
  """Copies directory ``src`` to ``dst`` (on any filesystems), empty directories too."""
  gfile = run_files.gfile()
  for root, _, _ in gfile.walk(src):
    gfile.makedirs(os.path.join(dst, root[len(src):].strip('/')))
  for path, relative in _files(src):
    gfile.copy(path, os.path.join(dst, relative), overwrite=True)


class Direct:
  """Orbax works in the run's checkpoint directory ``path`` itself: nothing to copy."""

  def __init__(self, path: str):
    self.path = path  # where orbax reads and writes

  def pull(self) -> None:
    """Makes ``path`` hold the run's committed steps (they are already there)."""

  def push(self, step: int) -> None:
    """Makes the run hold ``path``'s steps, ``step`` just saved (they are already there)."""

  def close(self) -> None:
    """Releases ``path`` (nothing to release)."""


class Mirror(Direct):
  """Orbax works in a local staging directory mirroring the run's checkpoint directory."""

  def __init__(self, directory: str):
    super().__init__(tempfile.mkdtemp(prefix='lr_study_checkpoints_'))
    self.directory = directory  # the run's, on a filesystem orbax cannot write

  def _remote(self) -> dict[int, bool]:
    """The run's step directories, each with whether it is committed."""
    gfile = run_files.gfile()
    if not gfile.isdir(self.directory):
      return {}
    names = (name.rstrip('/') for name in gfile.listdir(self.directory))
    return {int(name): gfile.exists(os.path.join(self.directory, name, COMMIT))
            for name in names if name.isdigit()}

  def _staged(self) -> set[int]:
    return {int(name) for name in os.listdir(self.path) if name.isdigit()}

  def _delete(self, step: int) -> None:
    """Deletes the run's ``step``: its commit marker first, then the rest."""
    step_dir = os.path.join(self.directory, str(step))
    run_files.remove(os.path.join(step_dir, COMMIT))
    try:
      run_files.gfile().rmtree(step_dir)
    except import_tensorflow().errors.NotFoundError:  # on a name that _files leaves out
      if _files(step_dir):
        raise

  def pull(self) -> None:
    committed = {step for step, whole in self._remote().items() if whole}
    staged = self._staged()
    for step in staged - committed:
      shutil.rmtree(os.path.join(self.path, str(step)))
    for step in sorted(committed - staged):
      _copy_tree(os.path.join(self.directory, str(step)), os.path.join(self.path, str(step)))

  def push(self, step: int) -> None:
    remote = self._remote()
    for old, whole in remote.items():
      if old >= step or not whole:
        self._delete(old)
    target = os.path.join(self.directory, str(step))
    _copy_tree(os.path.join(self.path, str(step)), target)
    run_files.write_atomic(os.path.join(target, COMMIT), f'{step}\n')
    kept = self._staged()
    for old, whole in remote.items():
      if old < step and whole and old not in kept:
        self._delete(old)

  def close(self) -> None:
    shutil.rmtree(self.path, ignore_errors=True)


def open_directory(directory: str) -> Direct:
  """Where orbax can work for the run's checkpoint ``directory``: a :class:`Direct` for
  local paths and ``gs://``, a :class:`Mirror` elsewhere."""
  if run_files.scheme(directory) in ORBAX_SCHEMES:
    return Direct(directory)
  return Mirror(directory)
