"""The shared registry of named builders: lookup, parameter checks, one-line errors."""

from __future__ import annotations

import ml_collections
import pytest

from lr_study.errors import ConfigError
from lr_study.registry import AS_PYTHON, Registry


def _registry(**kwargs) -> Registry[tuple]:
  registry = Registry('widget', **kwargs)

  @registry.register('plain', colour='blue')
  def plain(size: int, scale: float = 1.0) -> tuple:
    if size < 1:
      raise ConfigError(f'size must be >= 1, got {size}')
    return ('plain', size, scale)

  @registry.register('counted')
  def counted(size: int, num_examples: int | None = None) -> tuple:
    return ('counted', size, num_examples)

  return registry


def test_build_calls_the_named_builder_with_the_rest_of_the_config():
  config = ml_collections.ConfigDict(dict(name='plain', size=3))
  assert _registry().build(config, 'widget') == ('plain', 3, 1.0)


def test_build_with_arguments_fills_in_defaults():
  built = _registry().build_with_arguments({'name': 'plain', 'size': 3}, 'widget')
  assert (built.name, built.arguments) == ('plain', {'size': 3, 'scale': 1.0})


def test_unknown_name_lists_the_known_names():
  with pytest.raises(ConfigError, match=r"^w\.name: unknown widget 'nope' "
                                        r'\(known: counted, plain\)$'):
    _registry().build({'name': 'nope'}, 'w')


def test_unknown_parameter_is_named_with_the_known_ones():
  with pytest.raises(ConfigError, match=r"^w\.colour: unknown parameter of widget 'plain' "
                                        r'\(known: size, scale\)$'):
    _registry().build({'name': 'plain', 'size': 3, 'colour': 'red'}, 'w')


def test_missing_parameter_is_named():
  with pytest.raises(ConfigError, match=r"^w\.size: missing, widget 'plain' needs it$"):
    _registry().build({'name': 'plain'}, 'w')


def test_messages_choose_the_wording():
  with pytest.raises(ConfigError, match=r"^w \(plain\): got an unexpected keyword argument "
                                        r"'colour'$"):
    _registry(messages=AS_PYTHON).build({'name': 'plain', 'size': 3, 'colour': 'red'}, 'w')


def test_builder_errors_get_the_config_path():
  with pytest.raises(ConfigError, match=r'^outer\.w\.size must be >= 1, got 0$'):
    _registry().build({'name': 'plain', 'size': 0}, 'outer.w')


def test_builder_errors_pass_unchanged_without_prefix_errors():
  with pytest.raises(ConfigError, match=r'^size must be >= 1, got 0$'):
    _registry(prefix_errors=False).build({'name': 'plain', 'size': 0}, 'w')


def test_caller_parameters_reach_only_the_builders_that_take_them():
  registry = _registry(caller_parameters=('num_examples',))
  assert registry.build({'name': 'counted', 'size': 2}, 'w', num_examples=50) == (
      'counted', 2, 50)
  assert registry.build({'name': 'plain', 'size': 2}, 'w', num_examples=50) == (
      'plain', 2, 1.0)
  assert registry.parameters('counted') == ['size']


def test_caller_parameters_may_not_be_set_in_the_config():
  registry = _registry(caller_parameters=('num_examples',))
  with pytest.raises(ConfigError, match=r"^w\.num_examples: unknown parameter of widget"):
    registry.build({'name': 'counted', 'size': 2, 'num_examples': 50}, 'w', num_examples=50)


def test_duplicate_registration_is_refused():
  registry = _registry()
  with pytest.raises(ValueError, match=r"^widget 'plain' registered twice$"):
    registry.register('plain')(lambda size: ('again', size))
