"""Batch ramps: B changes at any update on the examples clock, with exact counts, each
example at most once per epoch, and exact resume in the middle of a ramp."""

from __future__ import annotations

import math
import os

import jax
import ml_collections
import numpy as np
import pytest

from conftest import digits_run_config
from experiments import mnist_decay_vs_batch
from lr_study import config as schema
from lr_study.data import feeds
from lr_study.data.feeds import load_feed
from lr_study.data.in_memory import epoch_permutation
from lr_study.errors import ConfigError
from lr_study.plan import build_plan
from lr_study.runtime import run_files
from lr_study.runtime.preemption import Preempted
from lr_study.schedules import clock
from lr_study.schedules.batch_ramp import geometric_ramp, linear_ramp
from lr_study.training import checkpoint
from lr_study.training.loop import train_and_evaluate
from lr_study.training.setup import prepare_run
from lr_study.study import resolve_variant
from lr_study.training.step import StepCompiler, init_train_state

MNIST_N = 60_000


def _plan(schedule: dict, num_examples: int = MNIST_N, num_epochs: int = 10, devices: int = 1):
  config = schema.get_config()
  config.num_epochs = num_epochs
  config.batch_schedule = ml_collections.ConfigDict(schedule)
  return build_plan(config, num_devices=devices, num_train_examples=num_examples)


def _oracle(kind: str, b0: int, b1: int, over: float, q: int, n: int, epochs: int
            ) -> list[tuple[int, int, int]]:
  """(epoch, first example, batch) of every update, straight from the definition: each
  update takes the next B(x) examples of its epoch's order; an epoch ends when they do
  not fit."""
  updates, seen = [], 0
  for epoch in range(epochs):
    offset = 0
    while True:
      r = min(seen / (n * epochs) / over, 1.0)
      target = b0 + (b1 - b0) * r if kind == 'linear' else b0 * (b1 / b0) ** r
      b = max(b0, q * math.floor(round(target / q, 9)))
      if offset + b > n:
        break
      updates.append((epoch, offset, b))
      offset, seen = offset + b, seen + b
  return updates


def _planned(plan) -> list[tuple[int, int, int]]:
  """(epoch, first example, batch) of every update, from the plan's clock: what the
  compiled step reads."""
  table, u = plan.table, np.arange(plan.total_updates)
  epoch, position = clock.epoch_and_position(table, u)
  batch = np.asarray(table.batch_size)[clock.phase_index(table, u)]
  return list(zip(epoch.tolist(), position.tolist(), batch.tolist()))


@pytest.mark.parametrize('kind, b0, b1, over, q, n, epochs', [
    ('linear', 64, 1024, 0.3, 64, MNIST_N, 10),
    ('geometric', 64, 1024, 0.3, 64, MNIST_N, 10),
    ('linear', 8, 512, 1.0, 8, 1437, 6),  # the ramp lasts the whole run
    ('geometric', 32, 256, 0.5, 32, 1437, 4),
])
def test_ramp_plan_gives_every_update_of_the_definition_exactly(kind, b0, b1, over, q, n,
                                                                 epochs):
  plan = _plan(dict(name=f'{kind}_ramp', batch_size=b0, final_batch_size=b1, over=over,
                    multiple=q), n, epochs)
  expected = _oracle(kind, b0, b1, over, q, n, epochs)
  assert _planned(plan) == expected
  assert plan.total_updates == len(expected)
  assert plan.examples_seen == sum(b for _, _, b in expected)


def test_linear_ramp_from_64_to_1024_over_30_percent_of_mnist():
  plan = _plan(dict(name='linear_ramp', batch_size=64, final_batch_size=1024, over=0.3))
  sizes = [b for _, _, b in _planned(plan)]
  assert sizes[0] == 64 and sizes[-1] == 1024
  assert all(b1 >= b0 for b0, b1 in zip(sizes, sizes[1:]))  # never shrinks
  assert sorted(set(sizes)) == list(range(64, 1025, 64))
  # B reaches 1024 once 30% of the 600,000 examples are seen.
  seen = np.cumsum([0] + sizes[:-1])
  assert sizes[int(np.argmax(seen >= 180_000))] == 1024
  assert max(b for b, s in zip(sizes, seen) if s < 180_000) < 1024
  assert plan.phases[-1].start_offset == 0 and plan.phases[-1].updates_per_epoch == 58


def test_the_mnist_study_ramp_variant_plans_2771_updates():
  config = resolve_variant(mnist_decay_vs_batch.get_config('ramp'), 'ramp')
  plan = build_plan(config, num_devices=1, num_train_examples=54_000)
  assert plan.total_updates == 2771
  assert plan.phases[0].batch_size == 64 and plan.phases[-1].batch_size == 1024
  assert len({p.batch_size for p in plan.phases}) == 16


@pytest.mark.parametrize('schedule', [
    dict(name='linear_ramp', batch_size=64, final_batch_size=1024, over=0.3),
    dict(name='geometric_ramp', batch_size=16, final_batch_size=512, over=0.8, multiple=16),
])
def test_each_example_is_used_at_most_once_per_epoch(schedule):
  plan = _plan(schedule)
  used: dict[int, list[int]] = {}
  for epoch, position, b in _planned(plan):
    used.setdefault(epoch, []).extend(range(position, position + b))
  assert sorted(used) == list(range(plan.num_epochs))
  for epoch, places in used.items():
    # The batches tile a head of the epoch's order: no place twice, none past N.
    assert places == list(range(len(places))) and len(places) <= MNIST_N
    phases = [p for p, _ in plan.epoch_segments(epoch)]
    assert len(places) == phases[0].epoch_examples
    assert MNIST_N - len(places) < plan.phases[clock.phase_index(
        plan.table, phases[-1].first_update + phases[-1].updates_per_epoch)].batch_size


def test_epoch_clock_runs_through_a_ramp_and_hits_each_epoch_start():
  plan = _plan(dict(name='linear_ramp', batch_size=64, final_batch_size=1024, over=0.3))
  epochs = plan.epoch_at_update(np.arange(plan.total_updates + 1))
  assert np.all(np.diff(epochs) > 0) and epochs[-1] == plan.num_epochs
  for e in range(plan.num_epochs):
    assert plan.epoch_at_update(plan.epoch_segments(e)[0][1]) == e


def test_ramps_round_down_to_the_multiple_and_end_at_the_final_batch():
  ramp = linear_ramp(batch_size=64, final_batch_size=1024, over=0.3)
  assert ramp.ramp(0.0) == 64 and ramp.ramp(0.3) == ramp.ramp(0.9) == 1024
  assert ramp.ramp(0.1) == 384 and ramp.ramp(0.099) == 320  # 64 + 960·0.33 = 380.8
  assert geometric_ramp(batch_size=64, final_batch_size=1024, over=0.3).ramp(0.15) == 256


@pytest.mark.parametrize('params, message', [
    (dict(batch_size=64, final_batch_size=32, over=0.3), 'final_batch_size must be'),
    (dict(batch_size=64, final_batch_size=1024, over=0.0), 'over must be in (0, 1]'),
    (dict(batch_size=64, final_batch_size=1000, over=0.3), 'must be multiples of multiple=64'),
    (dict(batch_size=64, final_batch_size=1024, over=1.5), 'over must be in (0, 1], got 1.5'),
])
def test_bad_ramp_parameters_are_one_line_errors(params, message):
  with pytest.raises(ConfigError) as e:
    _plan(dict(name='linear_ramp', **params))
  assert message in str(e.value) and '\n' not in str(e.value)
  assert str(e.value).startswith('batch_schedule')


def test_a_final_batch_larger_than_the_training_set_is_refused():
  with pytest.raises(ConfigError, match='final_batch_size 2048 is larger than the 1437'):
    _plan(dict(name='linear_ramp', batch_size=64, final_batch_size=2048, over=0.3), 1437, 4)


# --- real training on the digits, one CPU device

def _config(data_dir: str) -> ml_collections.ConfigDict:
  return digits_run_config(
      data_dir, variant='ramp', lr_schedule=dict(name='cosine', init_value=0.05, decay_steps=4),
      batch_schedule=dict(name='linear_ramp', batch_size=16, final_batch_size=128, over=0.5,
                          multiple=16),
      num_epochs=4, updates_per_dispatch=8)


def _train(config, run_dir: str, preemption=None):
  setup = prepare_run(config)
  compiler = StepCompiler(setup.model, setup.tx, setup.plan.lr_schedule, augment=False)
  summary = train_and_evaluate(setup, load_feed(config.dataset, setup.spec), run_dir, 0,
                               compiler, preemption=preemption)
  return setup, summary


@pytest.fixture(scope='module')
def ramp_run(digits_data_dir, tmp_path_factory) -> tuple:
  """``_config`` trained once, straight through: (setup, summary, its run_dir, the epochs
  whose example order ``feeds.epoch_permutation`` drew, in the order drawn)."""
  run_dir = str(tmp_path_factory.mktemp('ramp') / 'straight')
  drawn = []
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(feeds, 'epoch_permutation', lambda seed, epoch, n: drawn.append(epoch) or
                  epoch_permutation(seed, epoch, n))
    setup, summary = _train(_config(digits_data_dir), run_dir)
  return setup, summary, run_dir, drawn


@pytest.mark.slow
def test_training_through_a_ramp_keeps_the_plans_books_and_compiles_once_per_batch(ramp_run):
  setup, summary, run_dir, _ = ramp_run
  plan = setup.plan
  assert any(p.start_offset for p in plan.phases)  # batches change inside epochs
  assert summary['updates'] == plan.total_updates
  assert summary['examples_seen'] == plan.examples_seen
  assert summary['compiles'] == len({p.batch_size for p in plan.phases}) == 8
  log = run_files.read_jsonl(os.path.join(run_dir, run_files.METRICS))
  assert [r['update'] for r in log] == [plan.epoch_segments(e)[0][1] for e in range(1, 4)] + [
      plan.total_updates]
  assert [r['batch_size'] for r in log] == [plan.batch_size_at_epoch(e) for e in range(4)]


@pytest.mark.slow
def test_a_run_stopped_in_the_middle_of_a_ramp_resumes_exactly(ramp_run, digits_data_dir,
                                                                tmp_path, stop_after):
  setup, _, straight, _ = ramp_run
  resumed = str(tmp_path / 'resumed')
  with pytest.raises(Preempted):
    _train(_config(digits_data_dir), resumed, preemption=stop_after(5))
  template = init_train_state(setup.model, setup.tx, 0, setup.spec.image_shape)
  stopped = checkpoint.restore(resumed, template).step
  phase = setup.plan.phases[clock.phase_index(setup.plan.table, stopped)]
  assert phase.start_offset > 0 and phase.first_update < stopped  # inside a ramp's phase
  _train(_config(digits_data_dir), resumed)
  logs = [[{k: v for k, v in r.items() if k != 'wall_time'}
           for r in run_files.read_jsonl(os.path.join(d, run_files.METRICS))]
          for d in (straight, resumed)]
  assert logs[0] == logs[1]
  a, b = (checkpoint.restore(d, template).state for d in (straight, resumed))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_each_epoch_order_is_drawn_once_though_a_ramp_epoch_has_several_phases(ramp_run):
  setup, _, _, drawn = ramp_run
  assert max(len(setup.plan.epoch_segments(e)) for e in range(4)) > 1
  # The gradient noise measured after epoch e reads epoch e + 1's order; after the last
  # epoch, that of an epoch never trained.
  assert drawn == [0, 1, 2, 3, 4]


def test_streaming_mode_refuses_a_ramp(digits_data_dir):
  config = _config(digits_data_dir)
  config.dataset.mode = 'streaming'
  with pytest.raises(ConfigError, match="needs dataset.mode='in_memory'"):
    prepare_run(config)
