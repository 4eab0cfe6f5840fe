"""Runs a whole study: every (variant, seed) of a config, then its table and figure.

Every variant's config is validated, and its dataset's availability checked, before any
data is read. Each dataset is loaded and copied to the devices once for the study.
"""

from __future__ import annotations

import json
import os

import ml_collections

from lr_study import study
from lr_study.runtime import hosts
from lr_study.runtime import run_files
from lr_study.data.sources import check_dataset_available
from lr_study.training.loop import prepare_run, train_and_evaluate
from lr_study.data.feeds import TrainingData, load_training_data
from lr_study.training.step import StepCompiler


def run_study(config: ml_collections.ConfigDict, workdir: str) -> None:
  runs = study.run_names(config)
  setups = {name: prepare_run(study.resolve_variant(config, name))
            for name in dict.fromkeys(name for name, _ in runs)}
  for setup in setups.values():
    check_dataset_available(setup.config.dataset)
  writer = hosts.is_writer()  # process 0 of several writes the study's files
  if writer:
    os.makedirs(workdir, exist_ok=True)
    run_files.write_json(os.path.join(workdir, 'study_config.json'), config.to_dict())
  data: dict[str, TrainingData] = {}
  for name, seed in runs:
    setup = setups[name]
    key = json.dumps(setup.config.dataset.to_dict(), sort_keys=True)
    if key not in data:
      data[key] = load_training_data(setup.config.dataset, setup.spec)
    compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule, seed=seed,
                            augment=setup.config.dataset.augment)
    train_and_evaluate(setup, data[key], os.path.join(workdir, name, f'seed_{seed}'), seed,
                       compiler, label=f'{name} seed {seed}')
  if not writer:
    return
  from analysis import study_results  # pylint: disable=g-import-not-at-top
  table = study_results.write_study_outputs(workdir)
  print(table)
  print(f'\nresults in {workdir}: {", ".join(study_results.OUTPUTS)}, and per run '
        f'<variant>/seed_<k>/{run_files.METRICS}')
