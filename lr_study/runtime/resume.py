"""Whether a run directory may go on under a config: a run's record is append-only truth.

What a run logged and checkpointed was done under the config of its ``metadata.json``. A
rerun continues it only where that stays true, and says in one ConfigError line why not
otherwise, naming ``--restart`` (which moves the old runs aside), before any file changes:

* the config may differ only in the keys that change no result
  (``fingerprint.NOT_RESULTS``) and in ``num_epochs``;
* a new ``num_epochs`` is an extension (or a cut) only where the new plan agrees with the
  recorded one at every update already done (:func:`plan_disagreement`): the same batch,
  the same examples of the same epoch's order, the same LR, and the same evaluations and
  gradient noise measurements. A plan shorter than what was done, a batch ramp or an LR
  schedule stretched over the new length, a last evaluation or measurement the new plan
  would not make: all disagree. An agreeing run goes
  on and ends as a fresh run of the new config would (``metadata.resumed`` records it);
* a checkpoint whose config cannot be known (no ``metadata.json``) is not continued;
* every log holds at least the records its checkpoint counted (:func:`check_logs`): a log
  deleted, emptied or cut after it was written is not continued over.
"""

from __future__ import annotations

import os
import ml_collections
import numpy as np

from lr_study.errors import ConfigError
from lr_study.plan import TrainingPlan, build_plan
from lr_study.runtime import fingerprint, run_files

RESTART = 'rerun with --restart to start afresh (the old runs are moved aside, not deleted)'


def updates_done(run_dir: str) -> int:
  """The updates the record of ``run_dir`` holds: its summary's, else its newest
  checkpoint's (0 for none)."""
  summary = os.path.join(run_dir, run_files.SUMMARY)
  if run_files.exists(summary):
    return int(run_files.read_json(summary).get('updates') or 0)
  return max(run_files.checkpoint_steps(run_dir), default=0)


def _per_update(plan: TrainingPlan, done: int) -> dict[str, np.ndarray]:
  """What each of the first ``done`` updates of ``plan`` does, whatever the devices."""
  u = np.arange(done)
  phase = np.searchsorted([p.first_update for p in plan.phases], u, side='right') - 1
  field = lambda name: np.array([getattr(p, name) for p in plan.phases])[phase]
  k, per_epoch = u - field('first_update'), field('updates_per_epoch')
  return {'batch size': field('batch_size'), 'epoch': field('start_epoch') + k // per_epoch,
          'first example in the epoch': field('start_offset') + k % per_epoch * field('batch_size'),
          'learning rate': np.asarray(plan.lr_at_update(u), float)}


def plan_disagreement(old: TrainingPlan, new: TrainingPlan, done: int,
                      config: ml_collections.ConfigDict) -> str | None:
  """Where ``new`` disagrees with ``old`` within the first ``done`` updates, or None. Both
  evaluate (and measure the gradient noise) as ``config`` says, and at their end."""
  if done > new.total_updates:
    return f'the new plan has {new.total_updates:,} updates in all'
  if not done:
    return None
  was, will = _per_update(old, done), _per_update(new, done)
  for what in was:
    differ = np.flatnonzero(was[what] != will[what])
    if differ.size:
      u = int(differ[0])
      return (f'the new plan changes the {what} of update {u:,}: '
              f'{was[what][u]:g} -> {will[what][u]:g}')
  every = {'evaluation': config.eval_every_epochs}
  if config.get('gradient_noise_batch_size'):
    every['gradient noise measurement'] = config.gradient_noise_every_epochs
  for what, epochs in every.items():
    if done == old.total_updates < new.total_updates and old.num_epochs % epochs:
      return (f'its last {what}, after epoch {old.num_epochs}, is not one of the new plan '
              f'(every {epochs} epochs)')
  return None


def check_resumable(run_dir: str, config: ml_collections.ConfigDict) -> None:
  """A ConfigError if ``run_dir`` holds a record that ``config`` would not continue
  truthfully (see the module docstring). Reads only."""
  done = updates_done(run_dir)
  if not done:
    return
  metadata = os.path.join(run_dir, run_files.METADATA)
  if not run_files.exists(metadata):
    raise ConfigError(f'run_dir {run_dir} holds {done:,} updates but no {run_files.METADATA}: '
                      f'what config made them is unknown; {RESTART}')
  recorded = run_files.read_json(metadata)
  if not (isinstance(recorded, dict) and isinstance(recorded.get('config'), dict)
          and isinstance(recorded.get('plan'), dict)):
    raise ConfigError(f'{metadata} records no config and plan: what config made the '
                      f'{done:,} updates of run_dir {run_dir} is unknown; {RESTART}')
  try:
    fingerprint.check_same(run_dir, recorded['config'], config,
                           fingerprint.NOT_RESULTS + ('num_epochs',))
  except ConfigError as e:
    raise ConfigError(f'{e}; {RESTART}') from None
  before = recorded['config']['num_epochs']
  if before == config.num_epochs:
    return
  size = dict(num_devices=recorded['plan']['num_devices'],
              num_train_examples=recorded['plan']['num_train_examples'])
  old = build_plan(ml_collections.ConfigDict(recorded['config']), **size)
  why = plan_disagreement(old, build_plan(config, **size), done, config)
  if why:
    raise ConfigError(f'run_dir {run_dir}: num_epochs {before} -> {config.num_epochs} would '
                      f'relabel its {done:,} updates done: {why}; {RESTART}')


def check_logs(run_dir: str, lines: dict[str, int] | None, update: int) -> None:
  """A ConfigError naming the first log of ``run_dir`` that holds fewer records than
  ``lines``, the counts its checkpoint of ``update`` saved, or a damaged one (None for a
  checkpoint that counted none). Reads only."""
  for name, count in sorted((lines or {}).items()):
    path = os.path.join(run_dir, name)
    try:
      held = len(run_files.read_jsonl(path, first=count))
    except ConfigError as e:
      raise ConfigError(f'{e}; {RESTART}') from None
    if held < count:
      raise ConfigError(f'{path} holds {held} of the {count} records its checkpoint of update '
                        f'{update:,} counted: the log was deleted or cut after it was '
                        f'written; {RESTART}')

