"""What a run records beside its logs, so that its figures can be rebuilt and trusted later:
the resolved config, the plan, the devices, the package versions and the git commit."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from typing import Any

import jax
import ml_collections

from lr_study.runtime import fingerprint

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'numpy', 'tensorflow-cpu', 'tensorflow',
            'tensorflow-datasets', 'ml-collections', 'absl-py')


def package_versions() -> dict[str, str]:
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
  return versions


def git_commit() -> dict[str, Any]:
  """The commit of the code that ran, and whether the tree had uncommitted changes."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def git(*args: str) -> str:
    return subprocess.run(['git', '-C', root, *args], capture_output=True, text=True,
                          timeout=10).stdout.strip()

  try:
    return {'commit': git('rev-parse', 'HEAD') or None,
            'dirty': bool(git('status', '--porcelain', '--untracked-files=no'))}
  except (OSError, subprocess.SubprocessError):
    return {'commit': None, 'dirty': None}


def _this_start() -> dict[str, Any]:
  """Where and how this process runs: its devices, packages, code, host and command."""
  return {
      'devices': {'platform': jax.default_backend(), 'local_device_count': jax.local_device_count(),
                  'device_count': jax.device_count(), 'process_count': jax.process_count(),
                  'kinds': sorted({d.device_kind for d in jax.local_devices()})},
      'packages': package_versions(),
      'git': git_commit(),
      'python': sys.version.split()[0],
      'host': platform.node(),
      'command': sys.argv,
      'started': datetime.datetime.now(datetime.timezone.utc).isoformat(),
  }


def run_metadata(config: ml_collections.ConfigDict, plan: Any, seed: int,
                 sweep: dict[str, Any]) -> dict[str, Any]:
  """What a run records of itself when it starts; ``fingerprint`` hashes the config keys
  that change its results (``lr_study.runtime.fingerprint``). ``resumes`` lists each
  later resume (:func:`resumed`)."""
  return {
      'config': config.to_dict(),
      'fingerprint': fingerprint.fingerprint(config),
      'sweep': sweep,
      'seed': seed,
      'plan': plan.to_json(),
      **_this_start(),
      'resumes': [],
  }


def resumed(recorded: dict[str, Any], config: ml_collections.ConfigDict, plan: Any,
            update: int) -> dict[str, Any]:
  """``recorded`` (the run's metadata) with a record of this resume from ``update``
  appended to its ``resumes``: where and how this process runs, and for an extension
  (another ``num_epochs``, ``lr_study.runtime.resume``) the epochs before and after,
  the config and plan becoming the new ones. What the run started with stays."""
  record = {'update': update, **_this_start()}
  before = recorded['config'].get('num_epochs')
  if before != config.num_epochs:
    record['num_epochs'] = {'from': before, 'to': config.num_epochs}
    recorded = {**recorded, 'config': config.to_dict(),
                'fingerprint': fingerprint.fingerprint(config), 'plan': plan.to_json()}
  return {**recorded, 'resumes': [*recorded.get('resumes', []), record]}


def of_run(recorded: dict[str, Any] | None, config: ml_collections.ConfigDict, plan: Any,
           seed: int, sweep: dict[str, Any], update: int) -> dict[str, Any]:
  """A run's metadata as it starts from ``update``: ``recorded`` (its ``metadata.json``)
  resumed, or a fresh start's for ``update`` 0."""
  return resumed(recorded, config, plan, update) if update and recorded else run_metadata(
      config, plan, seed, sweep)
