"""The registries: plain dicts, one build helper, one wording for every bad name or
parameter, whichever family (schedule, batch schedule, model, optimizer)."""

from __future__ import annotations

import ml_collections
import pytest

from lr_study import registry
from lr_study.errors import ConfigError
from lr_study.models import build_model
from lr_study.schedules import build_lr_schedule
from lr_study.schedules.batch import build_batch_schedule
from lr_study.optimizers import build_optimizer

WIDGETS: dict = {}


@registry.register(WIDGETS, 'plain')
def _plain(size: int, scale: float = 1.0) -> tuple:
  if size < 1:
    raise ConfigError(f'size must be >= 1, got {size}')
  return ('plain', size, scale)


@registry.register(WIDGETS, 'counted')
def _counted(size: int, num_examples: int | None = None) -> tuple:
  return ('counted', size, num_examples)


def test_build_calls_the_named_builder_with_the_rest_of_the_config():
  config = ml_collections.ConfigDict(dict(name='plain', size=3))
  assert registry.build(WIDGETS, config, 'w', 'widget').value == ('plain', 3, 1.0)


def test_build_fills_in_defaults_in_the_arguments():
  built = registry.build(WIDGETS, {'name': 'plain', 'size': 3}, 'w', 'widget')
  assert (built.name, built.arguments) == ('plain', {'size': 3, 'scale': 1.0})


def test_a_name_registers_once():
  with pytest.raises(ValueError, match="'plain' registered twice"):
    registry.register(WIDGETS, 'plain')(_plain)


def test_unknown_name_lists_the_known_names():
  with pytest.raises(ConfigError, match=r"^w\.name: unknown widget 'nope' \(known: counted, plain\)$"):
    registry.build(WIDGETS, {'name': 'nope'}, 'w', 'widget')


def test_missing_parameter_is_named():
  with pytest.raises(ConfigError, match=r"^w\.size: missing, widget 'plain' needs it$"):
    registry.build(WIDGETS, {'name': 'plain'}, 'w', 'widget')


def test_builder_errors_get_the_config_path_in_front():
  with pytest.raises(ConfigError, match=r'^w\.size must be >= 1, got 0$'):
    registry.build(WIDGETS, {'name': 'plain', 'size': 0}, 'w', 'widget')


def test_caller_arguments_reach_the_builders_that_take_them_and_not_the_config():
  assert registry.build(WIDGETS, {'name': 'counted', 'size': 2}, 'w', 'widget',
                        num_examples=7).value == ('counted', 2, 7)
  with pytest.raises(ConfigError, match=r"^w\.num_examples: unknown parameter"):
    registry.build(WIDGETS, {'name': 'counted', 'size': 2, 'num_examples': 3}, 'w', 'widget',
                   num_examples=7)


@pytest.mark.parametrize('build, config, path, kind, known', [
    (build_lr_schedule, {'name': 'constant', 'init_value': 0.1}, 'lr_schedule', 'schedule',
     'init_value, clock'),
    (lambda c: build_batch_schedule(c, num_examples=100), {'name': 'constant', 'batch_size': 8},
     'batch_schedule', 'batch schedule', 'batch_size'),
    (lambda c: build_model(c, 10, 0), {'name': 'mlp', 'widths': (8,)}, 'model', 'model', None),
    (build_optimizer, {'name': 'sgd'}, 'optimizer', 'optimizer', 'momentum, weight_decay'),
])
def test_one_wording_for_an_unknown_parameter_in_every_family(build, config, path, kind, known):
  name = config['name']
  pattern = rf"^{path}\.foo: unknown parameter of {kind} '{name}' \(known: "
  with pytest.raises(ConfigError, match=pattern + (rf'{known}\)$' if known else '')):
    build({**config, 'foo': 1})


@pytest.mark.parametrize('build, config, message', [
    (lambda c: build_batch_schedule(c, num_examples=100), {'name': 'constant', 'batch_size': 8.0},
     'batch_schedule.batch_size must be a whole number >= 1, got 8.0'),
    (lambda c: build_model(c, 10, 0), {'name': 'mlp', 'widths': (128.0,)},
     r'model.widths must be a sequence of whole numbers >= 1, got \(128.0,\)'),
    (build_lr_schedule, {'name': 'reduce_on_plateau', 'init_value': 0.1, 'patience': 3.0},
     'lr_schedule.patience must be a whole number >= 0, got 3.0'),
    (lambda c: build_batch_schedule(c, num_examples=100),
     {'name': 'increase_on_plateau', 'batch_size': 8, 'max_batch_size': 32, 'patience': 3.0},
     'batch_schedule.patience must be a whole number >= 0, got 3.0'),
])
def test_whole_number_fields_refuse_floats_alike(build, config, message):
  with pytest.raises(ConfigError, match=f'^{message}$'):
    build(config)
