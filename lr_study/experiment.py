"""An experiment as ``launch.py`` names and loads it, for notebooks and other scripts.

    config = experiment.load('experiments/mnist_decay_vs_batch.py:decay,increase',
                             ['--config.epochs_scale=0.1', '--config.seeds=0,'])
    workdir = os.path.join('runs', experiment.workdir_name(
        'experiments/mnist_decay_vs_batch.py:decay,increase', config.epochs_scale))

is the study, and the default workdir, of ``python launch.py
--config=experiments/mnist_decay_vs_batch.py:decay,increase --config.epochs_scale=0.1
--config.seeds=0,``: the file's ``get_config('decay,increase')`` through ml_collections'
``config_flags``, then each override as the command line applies it.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from absl import flags
import ml_collections
from ml_collections import config_flags

from lr_study.errors import ConfigError


def load(config_arg: str, overrides: Sequence[str] = (), root: str = '') -> ml_collections.ConfigDict:
  """The config of ``launch.py --config=CONFIG_ARG OVERRIDES...``, the file's path taken
  relative to ``root`` (default: the working directory).

  Raises:
    ConfigError: one line, for a file that does not load or an override that does not apply.
  """
  path, sep, variants = config_arg.partition(':')
  argv = ['launch.py', f'--config={os.path.join(root, path)}{sep}{variants}', *overrides]
  values = flags.FlagValues()
  try:
    config_flags.DEFINE_config_file('config', None, flag_values=values, lock_config=True,
                                    sys_argv=argv)
    values(argv)
    values.config.to_dict()  # a config that failed to load raises its error here
  except LOAD_ERRORS as e:
    raise ConfigError(explain(e, argv)) from None
  return values.config


LOAD_ERRORS = (flags.Error, OSError, AttributeError, KeyError, ValueError, TypeError,
               SyntaxError)


def explain(error: BaseException, argv: Sequence[str] = ()) -> str:
  """One line for an error met while loading the config file or applying an override."""
  if isinstance(error, AttributeError) and isinstance(error.args[0], KeyError):
    key, *hint = str(error.args[0].args[0]).splitlines()  # "'lr'", 'Did you mean "lr_x"...'
    key = key.strip('\'"')
    flag = next((a for a in argv if a.startswith('--config.') and key in a.split('=')[0].split('.')),
                'a --config override')
    return f'unknown config key {key!r} in {flag}' + (f': {hint[0].strip()}' if hint else '')
  if isinstance(error, SyntaxError):
    return f'config file {error.filename} line {error.lineno}: {error.msg}'
  text = str(error)
  frames = re.findall(r'File "([^"]+)", line (\d+)', text)
  cause = text.strip().splitlines()[-1] if text.strip() else type(error).__name__
  cause = cause.removeprefix(f'{ConfigError.__module__}.{ConfigError.__name__}: ')
  if frames and 'config_flags' not in frames[-1][0]:  # get_config raised: where and what
    file, line = ([f for f in frames if not _is_library(f[0])] or frames)[-1]
    return f'config file {file} line {line}: {cause}'
  return cause.strip()


def _is_library(path: str) -> bool:
  """A file of lr_study or of an installed package, not of the user's config."""
  return (os.path.abspath(path).startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep)
          or 'site-packages' in path)


def workdir_name(config_arg: str, epochs_scale: float = 1.0) -> str:
  """``<config>[-<variants>][-epochs_scale=<s>]``, launch.py's default workdir under
  ``runs/``: the same study, the same name, so that running it again resumes it."""
  stem = os.path.splitext(os.path.basename(config_arg.split(':')[0]))[0]
  variant = config_arg.split(':')[1] if ':' in config_arg else ''
  return (stem + (f'-{variant.replace(",", "+")}' if variant else '')
          + ('' if epochs_scale == 1 else f'-epochs_scale={epochs_scale:g}'))
