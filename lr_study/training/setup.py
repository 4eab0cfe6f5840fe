"""A run's config, checked and built before any data is loaded: dataset spec, plan, model,
optimizer (``config → plan``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections

from lr_study import batching, config as schema
from lr_study.data.sources import DatasetSpec, dataset_spec
from lr_study.errors import ConfigError
from lr_study.models import build_model
from lr_study.runtime.devices import AXIS
from lr_study.plan import TrainingPlan, build_plan
from lr_study.optimizers import build_optimizer
from lr_study.training.gradient_noise import num_chunks


@dataclasses.dataclass
class RunSetup:
  """Everything built and validated from a run's config before any data is loaded."""

  config: ml_collections.ConfigDict
  spec: DatasetSpec
  plan: TrainingPlan
  model: Any
  tx: Any


def prepare_run(config: ml_collections.ConfigDict, num_devices: int | None = None) -> RunSetup:
  """Builds the plan, schedules, model and optimizer; ConfigError on any bad value.

  ``num_devices`` defaults to ``jax.device_count()``; the dry run plans for any number.
  ``dataset.eval_batch_size`` must divide over them (``batching.eval_per_device``).
  """
  schema.check(config)
  spec = dataset_spec(config.dataset)
  num_devices = num_devices or jax.device_count()
  plan = build_plan(config, num_devices=num_devices, num_train_examples=spec.num_train_examples)
  _check_plateau_metrics(plan, config.dataset.validation_size)
  _check_gradient_noise(config, plan, num_devices, spec.num_train_examples)
  batching.eval_per_device(config.dataset.eval_batch_size, num_devices)
  if plan.batch_schedule.ramp and config.dataset.mode == 'streaming':
    raise ConfigError(f'batch_schedule {plan.batch_schedule.name!r} changes the batch inside '
                      "epochs, which needs dataset.mode='in_memory', not 'streaming'")
  return RunSetup(config=config, spec=spec, plan=plan,
                  model=build_model(config.model, spec.num_classes, config.ghost_batch_size,
                                    axis_name=AXIS, dtype=config.compute_dtype),
                  tx=build_optimizer(config.optimizer))


def _check_plateau_metrics(plan: TrainingPlan, validation_size: int) -> None:
  """A plateau rule that watches a validation metric needs a validation split."""
  schedules = {'lr_schedule': plan.lr_schedule, 'batch_schedule': plan.batch_schedule}
  for owner, schedule in schedules.items():
    metric = schedule.params.get('metric', '') if schedule.dynamic else ''
    if metric.startswith('validation') and not validation_size:
      raise ConfigError(f'{owner}.metric {metric!r} needs dataset.validation_size > 0')


def _check_gradient_noise(config: ml_collections.ConfigDict, plan: TrainingPlan,
                          num_devices: int, num_train_examples: int) -> None:
  """The measurement has at least 2 chunks and falls on evaluations, and
  ``noise_adaptive`` has a measurement."""
  every, evals = config.gradient_noise_every_epochs, config.eval_every_epochs
  if every % evals:
    raise ConfigError(f'gradient_noise_every_epochs must be a multiple of eval_every_epochs='
                      f'{evals}, got {every}')
  if config.gradient_noise_batch_size:
    num_chunks(num_train_examples, config.gradient_noise_batch_size,
               config.gradient_noise_examples, num_devices,
               streaming=config.dataset.mode == 'streaming')
  elif plan.batch_schedule.dynamic == 'noise_adaptive':
    raise ConfigError("batch_schedule 'noise_adaptive' needs the gradient noise measurement, "
                      'gradient_noise_batch_size > 0, got 0')
