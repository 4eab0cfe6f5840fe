"""Config fingerprints: stable under a JSON round trip, blind to the keys left out, and
differences named by dotted path in one line."""

from __future__ import annotations

import json

import ml_collections
import pytest

from conftest import copy_reference, refused_in_one_line
from lr_study.errors import ConfigError
from lr_study.runtime import fingerprint


def _config(**overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(
      seeds=(0, 1, 2), run_variants=('decay',), learning_rate=0.05, num_epochs=40,
      model=dict(name='mlp', widths=(128, 128), dropout=0.0),
      dataset=dict(name='digits', data_dir='/data/a', validation_size=0),
      train_log_every_updates=100))
  with config.ignore_type():
    for path, value in overrides.items():
      node = config
      *parents, last = path.split('__')
      for key in parents:
        node = node[key]
      node[last] = value
  return config


def test_a_config_read_back_from_json_has_the_same_fingerprint():
  config = _config()
  recorded = json.loads(json.dumps(config.to_dict(), sort_keys=True))
  assert fingerprint.fingerprint(recorded) == fingerprint.fingerprint(config)
  assert len(fingerprint.fingerprint(config)) == 64


def test_a_value_that_changes_results_changes_the_fingerprint():
  assert (fingerprint.fingerprint(_config(model__widths=(256,)))
          != fingerprint.fingerprint(_config()))


def test_keys_left_out_do_not_change_the_fingerprint():
  changed = _config(seeds=(7,), run_variants=('increase',), train_log_every_updates=5,
                    dataset__data_dir='/elsewhere')
  assert fingerprint.fingerprint(changed) == fingerprint.fingerprint(_config())
  assert (fingerprint.fingerprint(changed, exclude=())
          != fingerprint.fingerprint(_config(), exclude=()))


def test_the_caller_chooses_the_keys_left_out():
  longer = _config(num_epochs=80)
  assert fingerprint.fingerprint(longer) != fingerprint.fingerprint(_config())
  exclude = fingerprint.NOT_RESULTS + ('num_epochs',)
  assert fingerprint.fingerprint(longer, exclude) == fingerprint.fingerprint(_config(), exclude)


def test_differences_are_dotted_paths_in_order_with_both_values():
  diffs = fingerprint.differences(_config(), _config(learning_rate=0.5, model__widths=(256,),
                                                     seeds=(9,)))
  assert diffs == [('learning_rate', 0.05, 0.5), ('model.widths', [128, 128], [256])]


def test_a_different_config_is_a_one_line_error_naming_the_keys():
  with pytest.raises(ConfigError) as error:
    fingerprint.check_same('runs/x', _config(), _config(learning_rate=0.5, model__widths=(256,)))
  assert str(error.value) == ('run_dir runs/x was run with a different config: '
                              'learning_rate 0.05 -> 0.5, model.widths (128, 128) -> (256,)')


def test_the_same_config_passes_the_check():
  recorded = json.loads(json.dumps(_config().to_dict()))
  fingerprint.check_same('runs/x', recorded, _config(seeds=(5,)))


def test_the_message_names_three_differences_and_counts_the_rest():
  current = _config(learning_rate=0.5, num_epochs=1, model__name='cnn', model__dropout=0.5,
                    dataset__validation_size=100)
  with pytest.raises(ConfigError, match=r": dataset.validation_size 0 -> 100, learning_rate "
                     r"0.05 -> 0.5, model.dropout 0.0 -> 0.5 and 2 more$"):
    fingerprint.check_same('runs/x', _config(), current)


def test_a_key_on_one_side_only_is_shown_absent():
  recorded = _config().to_dict()
  del recorded['model']['dropout']
  assert (fingerprint.describe(fingerprint.differences(recorded, _config()))
          == 'model.dropout <absent> -> 0.0')


def test_a_value_without_json_form_is_a_config_error():
  config = _config()
  with config.ignore_type():
    config.model.widths = object()
  with pytest.raises(ConfigError, match=r'^config value model.widths of type object has no '):
    fingerprint.fingerprint(config)


# --- launch.py resuming a run under another config --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('override, key', [
    ('--config.learning_rate=0.5', 'learning_rate'),
    ('--config.optimizer.momentum=0.5', 'optimizer.momentum'),
    ('--config.model.widths=64,64', 'model.widths'),
])
def test_resume_with_a_changed_config_is_refused_naming_the_key_and_changes_nothing(
    override, key, launcher, reference_workdir, tmp_path):
  workdir = str(tmp_path / 'workdir')
  copy_reference(reference_workdir, workdir)
  line = refused_in_one_line(launcher, launcher.args(workdir, override), workdir)
  assert 'was run with a different config' in line and f'{key} ' in line, line
