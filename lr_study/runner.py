"""Runs a whole study: every (variant, seed) of a config, each into its own run directory.

Every variant's config is validated, and its dataset's availability checked, before any
data is read. Each dataset is loaded and copied to the devices once for the study, and
each variant's train step is compiled once per distinct shape for all its seeds (the
seed is data to the step).
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

from lr_study import study
from lr_study.data.feeds import Feed, load_feed
from lr_study.data.sources import check_dataset_available
from lr_study.runtime import hosts, run_files
from lr_study.runtime.preemption import Preemption
from lr_study.runtime.run_dir import check_resumable
from lr_study.training import compile_count
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import RunSetup, prepare_run
from lr_study.training.step import StepCompiler


def prepare_study(config: ml_collections.ConfigDict) -> dict[str, RunSetup]:
  """Every variant's setup, validated, and its dataset's availability checked: the
  one-line ConfigErrors of a study, before any data is read or any file written."""
  setups = {name: prepare_run(run) for name, run in study.variant_configs(config).items()}
  for setup in setups.values():
    check_dataset_available(setup.config.dataset)
  return setups


def run_study(config: ml_collections.ConfigDict, workdir: str,
              sweep: dict[str, Any] | None = None,
              setups: dict[str, RunSetup] | None = None) -> list[dict[str, Any]]:
  """Trains (or resumes) every run of ``config`` under ``workdir``; returns their summaries.

  Run ``(variant, seed)`` lives in ``workdir/<variant>/seed_<seed>/``; ``sweep``, the
  point of a sweep this study is, goes into each run's ``metadata.json``. ``setups`` is
  :func:`prepare_study` of ``config`` where the caller has prepared it already.
  """
  runs, setups = study.run_names(config), setups or prepare_study(config)
  run_dirs = {(name, seed): os.path.join(workdir, name, f'seed_{seed}') for name, seed in runs}
  if hosts.is_writer():  # process 0 of several checks, then writes, the study's files
    for (name, _), run_dir in run_dirs.items():
      check_resumable(run_dir, setups[name].config)
    run_files.make_dirs(workdir)
    run_files.write_json(os.path.join(workdir, 'study_config.json'), config.to_dict())
  feeds: dict[str, Feed] = {}
  compilers = {name: StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule,
                                  augment=setup.config.dataset.augment, mean=setup.spec.mean,
                                  std=setup.spec.std)
               for name, setup in setups.items()}
  summaries = []
  with Preemption() as preemption:
    for name, seed in runs:
      setup = setups[name]
      key = json.dumps(setup.config.dataset.to_dict(), sort_keys=True)
      if key not in feeds:
        feeds[key] = load_feed(setup.config.dataset, setup.spec)
      summaries.append(train_and_evaluate(
          setup, feeds[key], run_dirs[name, seed], seed,
          compilers[name], label=f'{name} seed {seed}', sweep=sweep, preemption=preemption))
  compiles = {name: compiler.traces for name, compiler in compilers.items()}
  print(f'train step compiled {sum(compiles.values())} time(s) in all, once per distinct '
        f'shape of each variant for all {len(config.seeds)} seed(s): '
        + ', '.join(f'{name} {count}' for name, count in compiles.items())
        + f'; {compile_count.count()} XLA compile(s) in this process so far')
  return summaries
