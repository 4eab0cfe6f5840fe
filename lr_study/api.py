"""The public API: run a study, and take a run's learning rate into another loop."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import ml_collections
import optax

from lr_study.errors import ConfigError
from lr_study.plan import build_plan
from lr_study.runner import run_study
from lr_study.schedules import clock


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains, or resumes, every (variant, seed) of ``config`` into ``workdir``.

  Returns each run's summary (``WORKDIR/<variant>/seed_<k>/summary.json``).
  """
  return run_study(config, workdir)


def optax_schedule(config: ml_collections.ConfigDict, num_train_examples: int,
                   num_devices: int = 1) -> optax.Schedule:
  """The learning rate of the run ``config`` describes, as an ``optax.Schedule``.

  ``schedule(count)`` is the LR of the update that follows ``count`` updates (optax's
  convention), with the run's batch phases, its schedule's clock and the LR multipliers
  of capped batch schedules: ``lr_study.schedules.clock.learning_rate`` of the plan, the
  function the train step itself calls. It is jit-traceable.

  Raises:
    ConfigError: for a dynamic schedule (plateau, manual, batch on plateau), whose LR
      is not known before the run.
  """
  plan = build_plan(config, num_devices=num_devices, num_train_examples=num_train_examples)
  for owner, schedule in (('lr_schedule', plan.lr_schedule), ('batch_schedule', plan.batch_schedule)):
    if schedule.dynamic:
      raise ConfigError(f'{owner} {schedule.name!r} is dynamic: its LR is decided during the '
                        'run, so no schedule of the update count exists before it')
  table = plan.table
  return lambda count: clock.learning_rate(plan.lr_schedule, table, jnp.asarray(count))
