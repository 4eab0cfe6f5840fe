r"""The config schema: every key of an experiment config, with its default and its type.

    from lr_study import config as schema
    def get_config(arg=None):
      config = schema.get_config()
      config.dataset.name = 'mnist'
      ...

An experiment file (``experiments/*.py``) starts from :func:`get_config` and overrides
what it changes, as the Flax examples' configs start from ``configs/default.py``. Keys:

* ``seeds``: the seeds of the study; each (variant, seed) is one run.
* ``dataset``: ``name`` (digits, mnist, fashion_mnist, cifar10, cifar100), ``data_dir``
  (TFDS's; '' for its default), ``manual_dir`` (the original archives, for offline
  preparation), ``download``, ``train_split``/``test_split`` (TFDS split strings),
  ``validation_size`` (carved from the end of the training split), ``mode``
  (``in_memory`` or ``streaming``), ``augment`` (CIFAR crop and flip),
  ``eval_batch_size`` (one evaluation step over all devices: a multiple of their count).
* ``model``, ``optimizer``, ``lr_schedule``, ``batch_schedule``: ``{'name': ..., **params}``,
  built by name; each name's parameters are its builder's (README tables).
* ``learning_rate``, ``batch_size``: ε and B0, which the variants of the paper's studies
  read by reference (``lr_study.study.decay_vs_batch_variants``).
* ``num_epochs``; ``epochs_scale`` (s: the study in R(s·num_epochs) epochs, every
  epoch-valued boundary of its schedules moved in proportion, ``lr_study.shorten``);
  ``max_per_device_batch`` (above it, gradient accumulation; 0: no limit);
  ``ghost_batch_size`` (0: batch norm over each device's micro-batch).
* ``eval_every_epochs``, ``train_log_every_updates`` (0: no train log),
  ``checkpoint_every_epochs`` (0: none but the last), ``checkpoints_to_keep`` (the
  newest ones; a corrupt one falls back to the one before), ``updates_per_dispatch`` (updates
  the compiled step runs per call).
* ``compute_dtype``: ``'float32'``, or ``'bfloat16'`` (mixed precision: the model's
  layers compute in bfloat16; parameters, optimizer state, the loss and its reduction,
  batch-norm statistics and the gradient noise measurement stay float32).
* ``gradient_noise_batch_size`` (b; 0: not measured), ``gradient_noise_examples`` (n;
  0: the whole training split) and ``gradient_noise_every_epochs`` (a multiple of
  ``eval_every_epochs``): at those evaluations, and at the last, the gradient noise scale
  B_simple of the data loss is measured at the current parameters from the gradients of
  n/b chunks of b training examples, one forward and backward pass over n examples: the
  n/2 of highest loss at their last update and n/2 of the others
  (``lr_study.training.gradient_noise``).
* ``variants``: name → the top-level keys that variant replaces; ``run_variants``: the
  variants to run (``lr_study.study.select_variant``).

:func:`check` validates the keys that no builder owns, with the same one-line errors.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from lr_study import checks
from lr_study.errors import ConfigError

DATASET_MODES = ('in_memory', 'streaming')
COMPUTE_DTYPES = ('float32', 'bfloat16')
MAX_EPOCHS = 100_000  # planned in about 0.1 s; a billion epochs would take minutes
# Keys whose values must be whole numbers >= the given minimum.
_WHOLE = {'num_epochs': 1, 'max_per_device_batch': 0, 'ghost_batch_size': 0,
          'eval_every_epochs': 1, 'train_log_every_updates': 0, 'checkpoint_every_epochs': 0,
          'updates_per_dispatch': 1, 'gradient_noise_batch_size': 0,
          'gradient_noise_examples': 0, 'gradient_noise_every_epochs': 1,
          'checkpoints_to_keep': 1, 'dataset.validation_size': 0, 'dataset.eval_batch_size': 1}


def dataset_defaults(name: str = 'digits', **overrides: Any) -> ml_collections.ConfigDict:
  """``config.dataset`` with the schema's defaults, then ``overrides``."""
  dataset = ml_collections.ConfigDict(dict(
      name=name, data_dir='', manual_dir='', download=False, train_split='train',
      test_split='test', validation_size=0, mode='in_memory', augment=False,
      eval_batch_size=1000))
  dataset.update(overrides)
  return dataset


def get_config() -> ml_collections.ConfigDict:
  """Every key with its default: one MLP run on the embedded digits."""
  config = ml_collections.ConfigDict()
  config.seeds = (0,)
  config.dataset = dataset_defaults()
  config.model = dict(name='mlp', widths=(128, 128))
  config.optimizer = dict(name='momentum', momentum=0.9, weight_decay=0.0)
  config.learning_rate = 0.05
  config.batch_size = 32
  config.lr_schedule = dict(name='constant', init_value=config.get_ref('learning_rate'))
  config.batch_schedule = dict(name='constant', batch_size=config.get_ref('batch_size'))
  config.num_epochs = 10
  config.epochs_scale = 1.0
  config.max_per_device_batch = 0
  config.ghost_batch_size = 0
  config.eval_every_epochs = 1
  config.train_log_every_updates = 0
  config.checkpoint_every_epochs = 1
  config.checkpoints_to_keep = 2
  config.updates_per_dispatch = 32
  config.compute_dtype = 'float32'
  config.gradient_noise_batch_size = 128
  config.gradient_noise_examples = 8192
  config.gradient_noise_every_epochs = 10
  config.variants = ml_collections.ConfigDict()
  config.run_variants = ()
  return config


def _lookup(config: ml_collections.ConfigDict, path: str) -> Any:
  value = config
  for key in path.split('.'):
    value = value[key]
  return value


def check(config: ml_collections.ConfigDict) -> None:
  """Checks the keys no builder owns in the config of one run (a study's config with its
  variant resolved, ``lr_study.study.resolve_variant``): every schema key present, no
  unknown one, whole numbers whole, the dataset mode known.

  Raises:
    ConfigError: one line naming the key, e.g. ``num_epochs must be a whole number >= 1,
      got 8.0`` or ``unknown config key 'lr' (known: ...)``.
  """
  schema = get_config()
  del schema['variants'], schema['run_variants']
  for key in config:
    if key not in schema and key != 'variant':
      raise ConfigError(f'unknown config key {key!r} (known: {", ".join(sorted(schema))})')
  for key in config.dataset:
    if key not in schema.dataset:
      raise ConfigError(f'unknown config key dataset.{key} (known: '
                        f'{", ".join(sorted(schema.dataset))})')
  for path in [*schema, *(f'dataset.{k}' for k in schema.dataset)]:
    try:
      _lookup(config, path)
    except (KeyError, AttributeError):
      raise ConfigError(f'config key {path} is missing') from None
  for path, minimum in _WHOLE.items():
    checks.integer(path, _lookup(config, path), minimum)
  checks.choice('dataset.mode', config.dataset.mode, DATASET_MODES)
  checks.choice('compute_dtype', config.compute_dtype, COMPUTE_DTYPES)
  checks.positive('learning_rate', config.learning_rate)
  if config.num_epochs > MAX_EPOCHS:
    raise ConfigError(f'num_epochs must be at most {MAX_EPOCHS:,} (a plan is made epoch by '
                      f'epoch), got {config.num_epochs:,}')
  checks.positive('epochs_scale', config.epochs_scale)
