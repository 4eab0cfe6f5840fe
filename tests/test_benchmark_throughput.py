"""The throughput benchmark runs end to end on the embedded digits and writes its results.

Timings are not checked (they depend on the machine); the fields, the loops' bookkeeping
and the check that a measured update equals one without the measurement are. On the 8 fake CPU devices
of the test session the loop dispatches at most 16 updates at a time.
"""

from __future__ import annotations

import dataclasses
import json
import re

from absl import flags
import pytest

from benchmarks import throughput
from lr_study.errors import ConfigError

LOOPS = {'lr_study', 'lr_study_k1', 'lr_study_no_noise', 'jax_jit_tfdata', 'jax_jit',
         'jax_jit_device_batch'}
DIGITS_TRAIN = 1437  # examples in the embedded digits' training split


def _options(data_dir: str, out_dir: str = '', **overrides) -> throughput.Options:
  settings = dict(dataset='digits', data_dir=data_dir, batch_sizes=(64,), rounds=2, epochs=2,
                  torch=False, cold_start=False, noise_blocks=2, noise_examples=1024,
                  out_dir=out_dir)
  return throughput.Options(**(settings | overrides))


def test_digits_run_writes_every_field_to_json_and_markdown(digits_data_dir, tmp_path):
  results = throughput.run(_options(digits_data_dir))
  table = throughput.write(results, str(tmp_path))

  written = json.loads((tmp_path / throughput.JSON_NAME).read_text())
  assert (written['dataset'], written['batch_sizes']) == ('digits', [64])
  assert written['model'] == 'mlp 64-256-256-10'
  assert (written['device_count'], written['updates_per_dispatch']) == (8, 32)
  assert written['timed_epochs_per_loop'] == 2  # 2 runs of 2 epochs, the first not timed
  assert written['torch_version'] is None and written['cold_start'] is None
  assert [s['at'] for s in written['host_load']] == ['start', 'B=64 start', 'B=64 end']
  assert set(written['loops']) == LOOPS
  for name in LOOPS:
    result = written['loops'][name]['64']
    assert result['examples_per_epoch'] == (DIGITS_TRAIN // 64) * 64
    assert len(result['examples_per_second']['values']) == 2
    assert len(result['untimed_first_epoch_seconds']) == 2
    assert len(result['examples_per_second_per_run']) == 2
    assert all(0.0 <= a <= 1.0 for a in result['final_test_accuracy'])
  lr_study = written['loops']['lr_study']['64']
  assert lr_study['compiles'] == 1  # one train-step trace serves both seeds
  assert lr_study['xla_compiles_before_first_update'][1] == 0  # the second seed compiles nothing
  assert lr_study['first_dispatch_updates'] == 1  # each of the first 32 updates is measured
  assert written['loops']['lr_study_k1']['64']['first_dispatch_updates'] == 1
  for key in ('ratios', 'paired_ratios', 'best_epoch_ratios'):
    assert set(written[key]['64']) == {f'{x} / {y}' for x, y in throughput.RATIOS}
  ratios = written['ratios']['64']
  assert ratios['lr_study / jax_jit'] > 0 and ratios['lr_study / jax_jit_tfdata'] > 0
  assert ratios['lr_study / torch_randperm'] is None
  assert written['meets_targets'] == {
      baseline: {'64': ratios[f'lr_study / {baseline}'] >= 1.3}
      for baseline in ('jax_jit_tfdata', 'jax_jit')}

  noise = written['step_level']['64']
  assert noise['check'] == {'measured': True, 'params_max_abs_diff_without': 0.0}
  assert set(noise['us_per_update']) == set(throughput.STEP_VARIANTS)
  assert all(len(v['values']) == 2 for v in noise['us_per_update'].values())
  assert noise['updates_per_dispatch'] == 16 and noise['updates_per_block'] == 16
  assert noise['gradient_noise_every_updates'] == 32
  for key in ('cost_percent', 'loop_cost_percent'):
    assert isinstance(noise[key], float)
  assert set(noise['speed_vs_jax_jit']) == set(throughput.STEP_VARIANTS)
  assert noise['speed_vs_jax_jit']['jax_jit'] == 1.0

  assert table == (tmp_path / throughput.MARKDOWN_NAME).read_text()
  assert '| | B = 64 |' in table
  for baseline in ('jax_jit_tfdata', 'jax_jit'):
    assert re.search(rf'\| \*\*lr_study / {baseline}\*\* \| [\d.]+× \|', table)
  assert re.search(r"\| target vs the Flax example's tf.data loop \(lr_study / jax_jit_tfdata\) "
                   r'\| ≥ 1.30× (met|\*\*missed\*\*) \|', table)
  assert re.search(r'\| target vs NumPy-sliced jit \(lr_study / jax_jit\) \| ≥ 1.30× ', table)
  assert '| lr_study train-step compiles, all seeds | 1 |' in table
  assert '| **cost, % of the step** (step level) |' in table
  assert '| host-fed jit step (host slicing, copy, dispatch), speed ÷ host-fed jit | 1.00× |' in table


@pytest.mark.parametrize('loop', throughput.COLD_START_LOOPS)
def test_a_cold_start_reports_its_times_in_order(digits_data_dir, loop):
  out = throughput.first_update(_options(digits_data_dir), loop)
  assert out['imported'] <= out['data_loaded'] <= out['loop_started'] <= out['first_update']
  assert out['first_dispatch_updates'] == 1  # lr_study's first update is measured
  assert len(out['slowest_compiles']) == min(5, out['xla_compiles_before_first_update'])


def test_flags_set_every_option_and_default_to_its_default():
  flag_values = flags.FlagValues()
  throughput.define_flags(flag_values)
  flag_values(['throughput'])
  assert throughput.Options.from_flags(flag_values) == throughput.Options()
  flag_values(['throughput', '--batch_sizes=32,256', '--rounds=2', '--notorch',
               '--noise_examples=4096'])
  options = throughput.Options.from_flags(flag_values, ['--rounds=2'])
  assert (options.batch_sizes, options.rounds, options.torch) == ((32, 256), 2, False)
  assert (options.noise_examples, options.argv) == (4096, ('--rounds=2',))
  fields = {f.name for f in dataclasses.fields(throughput.Options)} - {'argv'}
  assert fields <= set(flag_values)


def test_lr_study_runs_between_its_target_baselines_in_every_round():
  names = ['lr_study', 'lr_study_k1', 'jax_jit_tfdata', 'jax_jit', 'jax_jit_device_batch']
  orders = [throughput.round_order(names, r) for r in range(6)]
  for order in orders:
    assert sorted(order) == sorted(names)
    i = order.index('lr_study')
    assert {order[i - 1], order[i + 1]} == {'jax_jit_tfdata', 'jax_jit'}
  # The three go first in either direction, and every other loop in its turn.
  assert {order[0] for order in orders} == {'jax_jit_tfdata', 'jax_jit', 'lr_study_k1',
                                            'jax_jit_device_batch'}


def test_epoch_clock_times_each_epoch_up_to_the_evaluation():

  class Feed:
    streaming = False
    eval_splits = {'test': 'split'}

    def epoch(self, seed, epoch, batch_size, updates, done=0):
      yield (seed, epoch), updates - done

  clock = throughput.EpochClock(Feed())
  for epoch in range(3):
    assert [u for _, u in clock.epoch(0, epoch, 8, 5)] == [5]
  assert not clock.streaming and clock.eval_splits == {'test': 'split'}  # the evaluator reads
  seconds = clock.epoch_seconds()
  assert len(seconds) == 3 and all(s >= 0 for s in seconds)
  assert sum(seconds) == pytest.approx(clock.evaluations[0] - clock.starts[0])


@pytest.mark.parametrize('overrides, message', [
    (dict(epochs=1), '--epochs must be >= 2 (the first is not timed), got 1'),
    (dict(rounds=0), '--rounds must be >= 1, got 0'),
    (dict(batch_sizes=(60,)), f'batch size 60 must be in [2, {DIGITS_TRAIN}] and divisible by '
                              'the 8 devices'),
])
def test_bad_settings_are_one_line_config_errors_before_any_data_is_read(tmp_path, overrides,
                                                                         message):
  missing = str(tmp_path / 'no_such_dir')  # reading data would fail with another error
  with pytest.raises(ConfigError, match=f'^{re.escape(message)}$'):
    throughput.run(_options(missing, **overrides))
