"""The records a run writes about its training: train-log lines, evaluation lines (the
metrics log) and its summary, from the metric sums the train state keeps on the devices."""

from __future__ import annotations

from typing import Any

import numpy as np

from lr_study.plan import TrainingPlan
from lr_study.schedules.noise_scale import noise_scale

Sums = tuple[float, float, int]  # (loss, accuracy, updates) summed since the last evaluation
NO_SUMS: Sums = (0.0, 0.0, 0)


def metric_sums(state: Any) -> Sums:
  """(loss, accuracy, updates) summed since the last evaluation (a device read)."""
  m = state.metrics
  return float(m.loss[0]), float(m.accuracy[0]), int(m.updates[0])


def learning_rate(state: Any) -> float:
  """The LR of the last update applied (a device read)."""
  return float(state.opt_state.hyperparams['learning_rate'][0])


def train_log_line(state: Any, sums_before: Sums, update: int, plan: TrainingPlan
                   ) -> tuple[dict[str, Any], Sums]:
  """The train-log line of the updates since the sums ``sums_before``, and the sums now."""
  sums = metric_sums(state)
  loss, accuracy, count = np.subtract(sums, sums_before)
  return {'update': update, 'epoch': plan.epoch_at_update(update),
          'learning_rate': learning_rate(state), 'train_loss': loss / count,
          'train_accuracy': accuracy / count}, sums


def metrics_line(state: Any, measured: dict[str, Any], config: Any, seed: int, counters: Any,
                 plan: TrainingPlan) -> dict[str, Any]:
  """The metrics line of an evaluation after ``counters.epoch`` epochs: the training
  metrics since the last one, then ``measured`` (the evaluation and any noise scale)."""
  loss, accuracy, count = metric_sums(state)
  lr, batch_size = learning_rate(state), plan.batch_size_at_epoch(counters.epoch - 1)
  return {'variant': config.get('variant', ''), 'seed': seed, 'update': counters.update,
          'epoch': float(counters.epoch), 'examples_seen': counters.examples_seen,
          'learning_rate': lr, 'batch_size': batch_size,
          'noise_scale': noise_scale(lr, batch_size, plan.num_train_examples, plan.momentum),
          'wall_time': counters.wall_time, 'train_loss': loss / count,
          'train_accuracy': accuracy / count, **measured}


def summary(config: Any, seed: int, counters: Any, plan: TrainingPlan, compiles: int,
            diverged_at: int, final: dict[str, Any]) -> dict[str, Any]:
  """The run's summary (``summary.json``); ``final``: its last metrics line ({} for a
  diverged run)."""
  return {'variant': config.get('variant', ''), 'seed': seed,
          'status': 'diverged' if diverged_at else 'finished',
          'diverged_at_update': diverged_at or None,
          'final_test_accuracy': final.get('test_accuracy'),
          'final_test_loss': final.get('test_loss'),
          'updates': counters.update, 'examples_seen': counters.examples_seen,
          'epochs': plan.num_epochs, 'wall_time': counters.wall_time,
          'planned_updates': plan.total_updates, 'compiles': compiles}


def outcome(summary_: dict[str, Any]) -> str:
  """``'diverged at update N'`` or ``'test accuracy 0.9722'``: how a summary's run ended."""
  if summary_['status'] == 'diverged':
    return f'diverged at update {summary_["diverged_at_update"]}'
  return f'test accuracy {summary_["final_test_accuracy"]:.4f}'
