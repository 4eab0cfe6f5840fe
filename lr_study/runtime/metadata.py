"""What a run records beside its logs, so that its figures can be rebuilt and trusted later:
the resolved config, the plan, and the environment it ran in (``lr_study.runtime.environment``:
devices and backend, the CPU and the instruction set XLA compiled for, ``XLA_FLAGS``,
package versions, the git commit and whether the tree was dirty)."""

from __future__ import annotations

import datetime
import platform
import sys
from typing import Any

import ml_collections

from lr_study.runtime import environment, fingerprint
from lr_study.runtime.environment import PACKAGES, git_commit, package_versions  # noqa: F401


def _this_start() -> dict[str, Any]:
  """Where and how this process runs: its devices, CPU and ISA, XLA flags, packages,
  code, host and command."""
  return {
      **environment.environment(),
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
