"""The throughput benchmark runs end to end on the embedded digits and writes its results.

Timings are not checked (they depend on the machine); the fields, the loops' bookkeeping
and the order the loops run in are. The run and the device counts' errors are on 8 fake
CPU devices (multidevice).
"""

from __future__ import annotations

import dataclasses
import json
import re

from absl import flags
import pytest

from benchmarks.throughput import cold_start, loops, report, timing
from benchmarks.throughput.options import COLD_START_LOOPS, Options, define_flags
from lr_study import config as schema
from lr_study.errors import ConfigError

LOOPS = {'lr_study', 'lr_study_k1', 'jax_jit_device_batch', 'jax_jit', 'jax_jit_tfdata'}
DIGITS_TRAIN = 1437  # examples in the embedded digits' training split


def _options(data_dir: str, **overrides) -> Options:
  settings = dict(dataset='digits', data_dir=data_dir, batch_sizes=(64,), rounds=2, epochs=2,
                  torch=False, cold_start=False, noise_settings=('32:512',))
  return Options(**(settings | overrides))


@pytest.mark.multidevice
def test_digits_run_writes_every_field_to_json_and_markdown(digits_data_dir, tmp_path):
  table = report.write(timing.run(_options(digits_data_dir)), str(tmp_path))

  written = json.loads((tmp_path / 'throughput.json').read_text())
  assert (written['dataset'], written['batch_sizes']) == ('digits', [64])
  assert written['model'] == 'mlp 64-256-256-10'
  assert (written['device_count'], written['updates_per_dispatch']) == (8, 32)
  assert set(written['cpu']) == {'model', 'isa', 'xla_cpu_max_isa', 'compiled_isa'}
  assert written['timed_epochs_per_loop'] == 2  # 2 runs of 2 epochs, the first not timed
  assert written['torch_version'] is None and written['cold_start'] is None
  assert [s['at'] for s in written['host_load']] == ['start', 'B=64 start', 'B=64 end']
  assert set(written['loops']) == LOOPS
  for name in LOOPS:
    result = written['loops'][name]['64']
    assert result['examples_per_epoch'] == (DIGITS_TRAIN // 64) * 64
    assert len(result['examples_per_second']['values']) == 2
    assert len(result['examples_per_second_per_run']) == 2
    assert all(0.0 <= a <= 1.0 for a in result['final_test_accuracy'])
  lr_study = written['loops']['lr_study']['64']
  assert lr_study['compiles'] == 1  # one train-step trace serves both seeds
  assert lr_study['xla_compiles_before_first_update'][1] == 0  # the second seed compiles nothing
  assert lr_study['first_dispatch_updates'] == 16  # 32 per dispatch, at most 16 on 8 CPUs
  assert written['loops']['lr_study_k1']['64']['first_dispatch_updates'] == 1
  ratios = written['ratios']['64']
  assert set(ratios) == {f'{x} / {y}' for x, y in report.RATIOS} - {'lr_study / torch_randperm'}
  assert all(r['of_medians'] > 0 and len(r['per_round']['values']) == 2
             for r in ratios.values())
  assert written['meets_targets'] == {
      'bound': {'64': ratios['lr_study / jax_jit_device_batch']['of_medians'] >= 0.97},
      'peer': {'64': ratios['lr_study / jax_jit']['of_medians'] >= 1.3},
      'noise': {'64': written['noise']['settings']['128:8192']['percent_of_training']['64']['median']
                <= 3.0}}

  noise = written['noise']
  assert (noise['default'], noise['target_percent']) == ('128:8192', 3.0)
  assert list(noise['settings']) == ['128:8192', '32:512']  # the default first
  # The default is the whole split (N < 8,192): one chunk of 128 per device; 32:512 is
  # 2 chunks per device, one hard and one easy.
  assert noise['settings']['128:8192']['examples_measured'] == (DIGITS_TRAIN // 1024) * 1024
  assert noise['settings']['32:512']['examples_measured'] == 512
  assert noise['every_epochs'] == schema.get_config().gradient_noise_every_epochs
  epochs = [lr_study['examples_per_epoch'] / rate
            for rate in lr_study['examples_per_second_per_run']]
  for setting in noise['settings'].values():  # each round's time over its median epoch
    seconds, percent = setting['seconds']['values'], setting['percent_of_training']['64']['values']
    assert percent == pytest.approx([100 * s / (noise['every_epochs'] * e)
                                     for s, e in zip(seconds, epochs, strict=True)])

  assert table == (tmp_path / 'throughput.md').read_text()
  assert re.search(r'\| \*\*lr_study / jax_jit_device_batch\*\* \(target ≥ 0.97×\) '
                   r'\| [\d.]+× \([\d.]+–[\d.]+\) (met|\*\*missed\*\*) \|', table)
  assert '| lr_study / jax_jit (target ≥ 1.30× at B = 64) |' in table
  assert re.search(r'\| \*\*b = 128, n = 8192 \(default\)\*\* \| 1,024 \| ', table)
  assert '| b = 32, n = 512 | 512 |' in table
  assert '| lr_study train-step compiles, all seeds | 1 |' in table
  assert f'XLA compiling for {written["cpu"]["compiled_isa"] or "an unknown ISA"}' in table


@pytest.mark.parametrize('loop', COLD_START_LOOPS)
@pytest.mark.slow
def test_a_cold_start_reports_its_times_in_order(digits_data_dir, loop):
  out = cold_start.first_update(_options(digits_data_dir), loop)
  assert out['imported'] <= out['data_loaded'] <= out['loop_started'] <= out['first_update']
  assert len(out['slowest_compiles']) == min(5, out['xla_compiles_before_first_update'])


def test_flags_set_every_option_and_default_to_its_default():
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  flag_values(['throughput'])
  assert Options.from_flags(flag_values) == Options()
  flag_values(['throughput', '--batch_sizes=32,256', '--rounds=2', '--notorch',
               '--noise_settings=64:0,32:1024'])
  options = Options.from_flags(flag_values, ['--rounds=2'])
  assert (options.batch_sizes, options.rounds, options.torch) == ((32, 256), 2, False)
  assert options.argv == ('--rounds=2',)
  assert options.noise() == [(128, 8192), (64, 0), (32, 1024)]  # the schema's default first
  assert {f.name for f in dataclasses.fields(Options)} - {'argv'} <= set(flag_values)


def test_lr_study_runs_between_the_bound_and_the_numpy_loop_in_every_round():
  names = ['lr_study', 'lr_study_k1', 'jax_jit_device_batch', 'jax_jit', 'jax_jit_tfdata']
  orders = [timing.round_order(names, r) for r in range(6)]
  for order in orders:
    assert sorted(order) == sorted(names)
    i = order.index('lr_study')
    assert {order[i - 1], order[i + 1]} == {'jax_jit_device_batch', 'jax_jit'}
  # The three go first in either direction, and every other loop in its turn.
  assert {order[0] for order in orders} == {'jax_jit_device_batch', 'jax_jit', 'lr_study_k1',
                                            'jax_jit_tfdata'}


def test_epoch_clock_times_each_epoch_up_to_the_evaluation():

  class Feed:
    streaming = False
    eval_splits = {'test': 'split'}

    def epoch(self, seed, epoch, batch_size, updates, done=0):
      yield (seed, epoch), updates - done

  clock = loops.EpochClock(Feed())
  for epoch in range(3):
    assert [u for _, u in clock.epoch(0, epoch, 8, 5)] == [5]
  assert not clock.streaming and clock.eval_splits == {'test': 'split'}  # the evaluator reads
  seconds = clock.epoch_seconds()
  assert len(seconds) == 3 and all(s >= 0 for s in seconds)
  assert sum(seconds) == pytest.approx(clock.evaluations[0] - clock.starts[0])


@pytest.mark.parametrize('overrides, message', [
    (dict(epochs=1), '--epochs must be >= 2 (the first is not timed), got 1'),
    (dict(rounds=0), '--rounds must be >= 1, got 0'),
    pytest.param(dict(batch_sizes=(60,)), f'batch size 60 must be in [2, {DIGITS_TRAIN}] and '
                 'divisible by the 8 devices', marks=pytest.mark.multidevice),
    (dict(noise_settings=('32',)), "--noise_settings takes CHUNK:EXAMPLES pairs of integers, "
                                   "got '32'"),
    pytest.param(dict(noise_settings=('32:128',)), 'gradient_noise_batch_size=32 leaves 0 '
                 f'chunk(s) of the {DIGITS_TRAIN} training examples on 8 device(s), need 2 in '
                 'each half, hard and easy', marks=pytest.mark.multidevice),
])
def test_bad_settings_are_one_line_config_errors_before_any_data_is_read(tmp_path, overrides,
                                                                         message):
  missing = str(tmp_path / 'no_such_dir')  # reading data would fail with another error
  with pytest.raises(ConfigError, match=f'^{re.escape(message)}$'):
    timing.run(_options(missing, **overrides))
