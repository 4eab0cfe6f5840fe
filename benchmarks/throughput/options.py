"""The throughput benchmark's settings and their flags."""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from absl import flags

from lr_study import config as schema
from lr_study.errors import ConfigError
from lr_study.training.gradient_noise import num_chunks

COLD_START_LOOPS = ('lr_study', 'jax_jit')


@dataclasses.dataclass
class Options:
  """The benchmark's settings; the flags of the same names set them."""

  dataset: str = 'mnist'
  data_dir: str = os.path.join('/tmp', 'lr_study_tfds')
  manual_dir: str = os.path.join('..', 'shared', 'data', 'mnist')
  batch_sizes: Sequence[int] = (64, 1024)
  rounds: int = 7
  epochs: int = 3
  learning_rate: float = 0.05
  torch: bool = True
  cold_start: bool = True
  noise_settings: Sequence[str] = ('128:0', '512:0', '128:4096', '128:16384', '32:8192')
  out_dir: str = os.path.join('benchmarks', 'results')
  argv: Sequence[str] = ()

  @classmethod
  def from_flags(cls, flag_values: flags.FlagValues, argv: Sequence[str] = ()) -> 'Options':
    """The settings of the parsed ``flag_values`` (see :func:`define_flags`)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(cls)
              if f.name != 'argv'}
    values['batch_sizes'] = tuple(int(b) for b in values['batch_sizes'])
    values['noise_settings'] = tuple(values['noise_settings'])
    return cls(**values, argv=tuple(argv))

  def noise(self) -> list[tuple[int, int]]:
    """``(chunk, examples)`` of each noise measurement timed, the schema's default first."""
    config = schema.get_config()
    default = f'{config.gradient_noise_batch_size}:{config.gradient_noise_examples}'
    pairs = []
    for setting in dict.fromkeys((default, *self.noise_settings)):
      try:
        chunk, examples = (int(v) for v in setting.split(':'))
      except ValueError:
        raise ConfigError('--noise_settings takes CHUNK:EXAMPLES pairs of integers, got '
                          f'{setting!r}') from None
      pairs.append((chunk, examples))
    return pairs

  def child_argv(self, loop: str, batch_size: int) -> list[str]:
    """The flags of a cold-start process for ``loop`` at ``batch_size``."""
    return [f'--first_update_of={loop}', f'--batch_sizes={batch_size}',
            f'--dataset={self.dataset}', f'--data_dir={self.data_dir}',
            f'--manual_dir={self.manual_dir}', f'--learning_rate={self.learning_rate}']

  def check(self, num_train_examples: int, num_devices: int) -> None:
    """ConfigError on a setting the benchmark cannot run with."""
    if self.rounds < 1:
      raise ConfigError(f'--rounds must be >= 1, got {self.rounds}')
    if self.epochs < 2:
      raise ConfigError(f'--epochs must be >= 2 (the first is not timed), got {self.epochs}')
    if not self.batch_sizes:
      raise ConfigError('--batch_sizes is empty')
    for b in self.batch_sizes:
      if b < 2 or b % num_devices or b > num_train_examples:
        raise ConfigError(f'batch size {b} must be in [2, {num_train_examples}] and divisible '
                          f'by the {num_devices} devices')
    for chunk, examples in self.noise():
      if chunk < 1 or examples < 0:
        raise ConfigError(f'noise setting {chunk}:{examples}: the chunk must be >= 1 and '
                          'the examples >= 0')
      num_chunks(num_train_examples, chunk, examples, num_devices)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """One flag per field of :class:`Options`, with its default, and the internal
  ``--first_update_of`` of the cold-start processes."""
  d, fv = Options(), {'flag_values': flag_values}
  flags.DEFINE_enum('dataset', d.dataset, ['mnist', 'digits'],
                    'mnist (the benchmark) or the embedded digits (a quick check).', **fv)
  flags.DEFINE_string('data_dir', d.data_dir,
                      'TFDS data_dir where the dataset is (or gets) prepared.', **fv)
  flags.DEFINE_string('manual_dir', d.manual_dir,
                      'The four official MNIST files, for offline preparation.', **fv)
  flags.DEFINE_list('batch_sizes', [str(b) for b in d.batch_sizes], 'Global batch sizes.',
                    **fv)
  flags.DEFINE_integer('rounds', d.rounds, 'Runs of each loop per batch size (lr_study: '
                       'seeds).', **fv)
  flags.DEFINE_integer('epochs', d.epochs, 'Epochs per run; the first of each run is not '
                       'timed.', **fv)
  flags.DEFINE_float('learning_rate', d.learning_rate, 'Constant LR of every loop.', **fv)
  flags.DEFINE_bool('torch', d.torch, 'Time the PyTorch loops when torch is importable.',
                    **fv)
  flags.DEFINE_bool('cold_start', d.cold_start, 'Time the first update in a fresh process per '
                    'loop and batch size.', **fv)
  flags.DEFINE_list('noise_settings', list(d.noise_settings),
                    'CHUNK:EXAMPLES gradient noise measurements timed besides the default '
                    '(gradient_noise_batch_size:gradient_noise_examples; 0 examples: the '
                    'whole split).', **fv)
  flags.DEFINE_string('out_dir', d.out_dir, 'Where throughput.json and throughput.md go.',
                      **fv)
  flags.DEFINE_enum('first_update_of', None, list(COLD_START_LOOPS),
                    'Internal: time one cold start of this loop and print it as JSON.', **fv)
