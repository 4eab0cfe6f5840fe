"""lr_study.sweep: --sweep flags and config sweeps into named grid points applied to a config."""

from __future__ import annotations

import os
import subprocess
import sys

import ml_collections
import pytest

from lr_study import sweep, sweep_flags
from lr_study.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _study_config() -> ml_collections.ConfigDict:
  """A study config shaped like the paper's: variants read ε and B0 by reference, each use
  a reference of its own (as ``lr_study.study.decay_vs_batch_variants`` makes them)."""
  config = ml_collections.ConfigDict()
  config.learning_rate = 0.05
  config.batch_size = 8
  config.num_epochs = 40
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=(128, 128)))
  lr, batch = config.get_ref('learning_rate'), config.get_ref('batch_size')
  config.variants = ml_collections.ConfigDict({
      'decay': dict(lr_schedule=dict(name='multistep', init_value=lr.identity(),
                                     boundaries=(10, 20))),
      'hybrid': dict(lr_schedule=dict(name='constant', init_value=lr.identity()),
                     batch_schedule=dict(name='hybrid', max_batch_size=batch * 4)),
  })
  config.lock()
  return config


def test_flag_values_parse_as_python_literals_or_plain_strings():
  key, values = sweep_flags.parse_sweep_flag("model.name=mlp,'cnn',1e-3,16,True,None")
  assert key == 'model.name'
  assert values == ('mlp', 'cnn', 1e-3, 16, True, None)
  assert [type(v) for v in values[2:5]] == [float, int, bool]


def test_commas_inside_brackets_and_quotes_do_not_split_values():
  _, values = sweep_flags.parse_sweep_flag("variants.decay.lr_schedule.boundaries=(10, 20),(5,15),'a,b'")
  assert values == ((10, 20), (5, 15), 'a,b')


def test_repeated_flags_make_the_product_first_flag_outermost():
  axes = sweep.axes_from_flags(['learning_rate=0.02,0.05', 'batch_size=8,16'])
  assert sweep.grid(axes) == [
      {'learning_rate': 0.02, 'batch_size': 8}, {'learning_rate': 0.02, 'batch_size': 16},
      {'learning_rate': 0.05, 'batch_size': 8}, {'learning_rate': 0.05, 'batch_size': 16}]


def test_no_sweep_is_one_empty_point_named_empty():
  base, points = sweep.sweep_points(_study_config())
  assert points == [('', {})]
  assert base.learning_rate == 0.05


def test_point_names_are_key_ordered_and_filesystem_safe():
  assert sweep.point_name({'learning_rate': 0.02}) == 'learning_rate=0.02'
  assert sweep.point_name({'learning_rate': 0.02, 'batch_size': 16}) == (
      'batch_size=16,learning_rate=0.02')
  name = sweep.point_name({'model.name': 'a/b c', 'variants.decay.lr_schedule.boundaries': (10, 20)})
  assert name == 'model.name=a_b_c,variants.decay.lr_schedule.boundaries=10_20'
  assert '/' not in name and ' ' not in name


def test_a_long_point_name_is_cut_and_ends_in_a_hash_of_the_whole():
  long_a = {'variants.decay.lr_schedule.init_value': 0.1, 'model.name': 'x' * 300}
  long_b = {'variants.decay.lr_schedule.init_value': 0.1, 'model.name': 'x' * 299 + 'y'}
  a, b = sweep.point_name(long_a), sweep.point_name(long_b)
  assert len(a) == sweep.MAX_NAME and len(b) == sweep.MAX_NAME and a != b


def test_points_that_would_share_a_directory_are_an_error():
  with pytest.raises(ConfigError, match='share the directory'):
    sweep.point_names([{'model.name': 'a/b'}, {'model.name': 'a b'}])


def test_apply_point_sets_values_on_a_copy():
  config = _study_config()
  applied = sweep.apply_point(config, {'num_epochs': 10, 'model.widths': (64,)})
  assert (applied.num_epochs, applied.model.widths) == (10, (64,))
  assert (config.num_epochs, config.model.widths) == (40, (128, 128))
  assert applied.is_locked


def test_the_key_others_refer_to_sets_every_variant():
  applied = sweep.apply_point(_study_config(), {'learning_rate': 0.02, 'batch_size': 16})
  assert applied.variants.decay.lr_schedule.init_value == 0.02
  assert applied.variants.hybrid.lr_schedule.init_value == 0.02
  assert applied.variants.hybrid.batch_schedule.max_batch_size == 64


def test_a_key_that_refers_to_a_shallower_one_is_set_alone():
  applied = sweep.apply_point(_study_config(), {'variants.decay.lr_schedule.init_value': 0.3})
  assert applied.variants.decay.lr_schedule.init_value == 0.3
  assert applied.learning_rate == 0.05
  assert applied.variants.hybrid.lr_schedule.init_value == 0.05


def test_an_int_for_a_float_field_is_stored_as_a_float():
  assert repr(sweep.apply_point(_study_config(), {'learning_rate': 1}).learning_rate) == '1.0'


@pytest.mark.parametrize('point, named', [
    ({'learnin_rate': 0.1}, "'learnin_rate'"),
    ({'model.depth': 3}, "'model.depth': model has no field 'depth'"),
    ({'model.name.x': 1}, "'model.name.x'"),
])
def test_an_unknown_key_is_a_one_line_config_error_naming_it(point, named):
  with pytest.raises(ConfigError) as error:
    sweep.apply_point(_study_config(), point)
  assert named in str(error.value) and '\n' not in str(error.value)


@pytest.mark.parametrize('point, named', [
    ({'learning_rate': 'fast'}, "'learning_rate' is a float field, got 'fast'"),
    ({'num_epochs': 2.5}, "'num_epochs' is an int field, got 2.5"),
    ({'num_epochs': True}, "'num_epochs' is an int field, got True"),
    ({'model.widths': 5}, "'model.widths' is a tuple field, got 5"),
])
def test_a_value_of_the_wrong_type_is_a_one_line_config_error_naming_it(point, named):
  with pytest.raises(ConfigError) as error:
    sweep.apply_point(_study_config(), point)
  assert named in str(error.value) and '\n' not in str(error.value)


@pytest.mark.parametrize('flag, named', [
    ('learning_rate', 'expected KEY=v1,v2'),
    ('learning_rate=', "empty value for 'learning_rate'"),
    ('learning_rate=0.1,,0.2', "empty value for 'learning_rate'"),
    ('=0.1', 'not a dotted config key'),
    ('a..b=1', 'not a dotted config key'),
    ('learning_rate=0.1,0.1', "'learning_rate' repeats a value"),
])
def test_a_malformed_flag_is_a_config_error_naming_it(flag, named):
  with pytest.raises(ConfigError, match=named):
    sweep.axes_from_flags([flag])


def test_a_key_swept_by_two_flags_is_an_error():
  with pytest.raises(ConfigError, match="'learning_rate' is given twice"):
    sweep.axes_from_flags(['learning_rate=0.1', 'learning_rate=0.2'])


def test_a_config_sweep_entry_of_nested_dicts_gives_dotted_keys():
  config = _study_config()
  with config.unlocked():
    config.sweep = {'learning_rate': (0.02, 0.05),
                    'variants': {'decay': {'lr_schedule': {'init_value': (0.1, 0.2)}}}}
  base, points = sweep.sweep_points(config)
  assert 'sweep' not in base and 'sweep' in config
  assert [name for name, _ in points] == [
      'learning_rate=0.02,variants.decay.lr_schedule.init_value=0.1',
      'learning_rate=0.02,variants.decay.lr_schedule.init_value=0.2',
      'learning_rate=0.05,variants.decay.lr_schedule.init_value=0.1',
      'learning_rate=0.05,variants.decay.lr_schedule.init_value=0.2']


def test_a_flag_replaces_the_config_sweep_of_the_same_key():
  config = _study_config()
  with config.unlocked():
    config.sweep = {'learning_rate': (0.02, 0.05), 'batch_size': (8, 16)}
  _, points = sweep.sweep_points(config, ['learning_rate=0.1'])
  assert [p for _, p in points] == [{'learning_rate': 0.1, 'batch_size': 8},
                                    {'learning_rate': 0.1, 'batch_size': 16}]


@pytest.mark.parametrize('swept, overridden', [
    ('learning_rate', 'learning_rate'),  # the same key
    ('variants.decay', 'variants.decay.lr_schedule.init_value'),  # a key inside the swept one
    ('variants.decay.lr_schedule.init_value', 'variants.decay'),  # a key around it
])
def test_a_swept_key_also_overridden_is_a_one_line_error_naming_both(swept, overridden):
  with pytest.raises(ConfigError) as error:
    sweep.sweep_points(_study_config(), [f'{swept}=1,2'], [overridden])
  assert str(error.value) == (f'--config.{overridden} and the sweep of {swept!r} both set '
                              f'{swept}: give its values in the sweep alone (--sweep={swept}=...)')


def test_a_config_file_sweep_of_an_overridden_key_is_refused_too():
  config = _study_config()
  with config.unlocked():
    config.sweep = {'learning_rate': (0.02, 0.05)}
  with pytest.raises(ConfigError, match='--config.learning_rate and the sweep of'):
    sweep.sweep_points(config, [], ['learning_rate'])


def test_overrides_of_other_keys_sweep_as_before():
  _, points = sweep.sweep_points(_study_config(), ['learning_rate=0.1,0.2'],
                                 ['batch_size', 'learning_rates'])
  assert [p for _, p in points] == [{'learning_rate': 0.1}, {'learning_rate': 0.2}]


def test_a_config_sweep_value_that_is_not_a_tuple_is_an_error():
  config = _study_config()
  with config.unlocked():
    config.sweep = {'learning_rate': 0.02}
  with pytest.raises(ConfigError, match='config.sweep.learning_rate must be a tuple or list'):
    sweep.sweep_points(config)


def test_sweep_points_checks_every_point_before_anything_runs():
  with pytest.raises(ConfigError, match="'num_epochs' is an int field, got 'many'"):
    sweep.sweep_points(_study_config(), ['num_epochs=10,many'])


def test_a_point_for_metadata_holds_lists_not_tuples():
  assert sweep.jsonable({'lr_schedule.boundaries': (10, 20), 'learning_rate': 0.1}) == {
      'lr_schedule.boundaries': [10, 20], 'learning_rate': 0.1}


def test_the_module_imports_no_jax():
  code = 'import sys, lr_study.sweep; sys.exit("jax" in sys.modules)'
  assert subprocess.run([sys.executable, '-c', code], cwd=ROOT, timeout=60).returncode == 0
