"""analysis.curves: one averaging over seeds, and the schedules as the library computes them."""

from __future__ import annotations

import numpy as np

from analysis import curves
from analysis.runs import Run
from lr_study.schedules.noise_scale import noise_scale


def _run(seed: int, **logs) -> Run:
  return Run(workdir='w', run_dir=f'w/v/seed_{seed}', variant='v', seed=seed, point={},
             point_name='', **logs)


def _phase(first_update: int, start: int, end: int, batch: int, per_epoch: int,
           start_offset: int = 0, epoch_examples: int | None = None) -> dict:
  return {'first_update': first_update, 'start_epoch': start, 'end_epoch': end,
          'updates_per_epoch': per_epoch, 'batch_size': batch, 'lr_multiplier': 1.0,
          'start_offset': start_offset, 'epoch_examples': epoch_examples or per_epoch * batch}


def test_rows_at_one_epoch_are_matched_in_their_order_across_seeds():
  # A batch ramp's phases share their epoch: each keeps its place, none is averaged away.
  rows = [[{'epoch': 0, 'b': 64}, {'epoch': 0, 'b': 128}, {'epoch': 1, 'b': 128 + k}]
          for k in (0, 2)]
  curve = curves.mean_over_seeds(rows, 'epoch', 'b')
  np.testing.assert_allclose(curve.x, [0, 0, 1])
  np.testing.assert_allclose(curve.mean, [64, 128, 129])
  np.testing.assert_allclose(curve.std, [0, 0, np.sqrt(2)])
  assert curve.seeds == 2


def test_the_noise_scale_of_a_train_log_row_takes_the_batch_of_its_last_update():
  plan = {'num_train_examples': 1000, 'momentum': 0.9,
          'phases': [_phase(0, 0, 1, 10, 100), _phase(100, 1, 2, 100, 10)]}
  log = [{'update': u, 'epoch': e, 'learning_rate': 0.1}
         for u, e in ((50, 0.5), (100, 1.0), (105, 1.5), (110, 2.0))]
  rows = curves.noise_scale_rows(_run(0, train_log=log, plan=plan))
  expected = [noise_scale(0.1, b, 1000, 0.9) for b in (10, 10, 100, 100)]
  assert [r['noise_scale'] for r in rows] == expected


def test_schedules_from_metrics_are_steps_from_epoch_0():
  runs = [_run(s, metrics=[{'epoch': 1.0, 'batch_size': 8}, {'epoch': 2.0, 'batch_size': 32}])
          for s in range(2)]
  curve = curves.schedule_curve(runs, 'batch_size')
  assert curve.drawstyle == 'steps-pre'
  np.testing.assert_allclose(curve.x, [0, 1, 2])
  np.testing.assert_allclose(curve.mean, [8, 8, 32])
