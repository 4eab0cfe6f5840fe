r"""Runs a learning-rate / batch-size schedule study from an experiment config.

    python launch.py                                  # the default study (digits, 3 schedules)
    python launch.py --config=experiments/mnist_decay_vs_batch.py --workdir=runs/mnist
    python launch.py --config=experiments/cifar10_wrn.py:hybrid --config.num_epochs=50
    python launch.py --config=experiments/cifar10_wrn.py --dry_run   # the plan only
    python launch.py --config=experiments/cifar10_wrn.py --distributed  # on every host

A config without a variant runs all its variants, each for every seed in
``config.seeds``, into ``WORKDIR/<variant>/seed_<k>/``; then it prints the study table
and writes ``table.md``, ``table.csv`` and ``figure.png`` to WORKDIR. A run directory
that holds a checkpoint is resumed. Bad flags or config values stop with a one-line
error and exit status 2 before any data is loaded.

``--distributed`` runs one study over several processes (every host of a TPU pod slice,
or several GPU machines): each runs the same command, ``jax.distributed.initialize``
joins them (its arguments are detected on Cloud TPU, SLURM, Open MPI and Kubernetes;
elsewhere pass ``--coordinator_address``, ``--num_processes`` and ``--process_id``), and
process 0 writes WORKDIR.
"""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

from absl import app, flags, logging
import ml_collections

DEFAULT_CONFIG = 'experiments/digits_study.py'


def _fail(message: str) -> NoReturn:
  print(f'launch.py: error: {message}', file=sys.stderr)
  sys.exit(2)


def _one_line(error: BaseException, argv: list[str]) -> str:
  """A one-line message naming the flag or config value at fault."""
  if isinstance(error, (AttributeError, KeyError)):  # an override of a key the config lacks
    key = str(error).strip('"\'')
    flag = next((a for a in argv if a.startswith('--config.')
                 and key in a.split('=')[0].split('.')), None)
    return f'unknown config key {key!r}' + (f' in {flag}' if flag else '')
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if 'Error whilst parsing config file' in str(error):  # get_config raised: keep its message
    return f'{lines[0].split(": Error")[0]}: {lines[-1].split(": ", 1)[-1]}'
  if isinstance(error, OSError) and len(lines) > 1:
    return f'cannot load config file {lines[-2]}: {lines[-1]}'
  return lines[0] if lines else type(error).__name__


def _define_flags() -> None:
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  try:
    config_flags.DEFINE_config_file(
        'config', DEFAULT_CONFIG, 'Experiment config: experiments/<file>.py[:variant], with '
        '--config.a.b=value overrides.', lock_config=True)
  except (AttributeError, KeyError) as e:  # an override of an unknown key in sys.argv
    _fail(_one_line(e, sys.argv))
  flags.DEFINE_string('workdir', None, 'Where the runs go; default runs/<config>-<time>.')
  flags.DEFINE_bool('dry_run', False, 'Print and write the training plan only: no data, no '
                    'accelerator.')
  flags.DEFINE_integer('num_devices', 1, 'Devices the dry run plans for (a real run uses all).')
  flags.DEFINE_bool('distributed', False, 'Join the processes of a multi-host run '
                    '(jax.distributed.initialize) before touching a device.')
  flags.DEFINE_string('coordinator_address', None, 'With --distributed: host:port of '
                      'process 0, where JAX cannot detect it.')
  flags.DEFINE_integer('num_processes', None, 'With --distributed: the number of processes.')
  flags.DEFINE_integer('process_id', None, 'With --distributed: this process, 0-based.')


def parse_flags(argv: list[str]) -> list[str]:
  try:
    rest = flags.FLAGS(argv)
    config = flags.FLAGS.config
    if not isinstance(config, ml_collections.ConfigDict):
      config.to_dict()  # an _ErrorConfig: raises the error that loading the file met
  except (flags.Error, OSError, AttributeError, KeyError, ValueError, TypeError) as e:
    _fail(_one_line(e, argv))
  return rest


def _default_workdir(config_arg: str) -> str:
  """``runs/<config>[-<variants>]``: the same command resumes the same study."""
  stem = os.path.splitext(os.path.basename(config_arg.split(':')[0]))[0]
  variant = config_arg.split(':')[1] if ':' in config_arg else ''
  return os.path.join('runs', f'{stem}{"-" + variant.replace(",", "+") if variant else ""}')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}')
  logging.set_verbosity(logging.ERROR)
  from lr_study.errors import ConfigError  # pylint: disable=g-import-not-at-top

  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  workdir = flags.FLAGS.workdir or _default_workdir(
      config_flags.get_config_filename(flags.FLAGS['config']))
  _join_processes(flags.FLAGS)
  try:
    if flags.FLAGS.dry_run:
      _dry_run(flags.FLAGS.config, workdir, flags.FLAGS.num_devices)
    else:
      from lr_study import runner  # pylint: disable=g-import-not-at-top
      runner.run_study(flags.FLAGS.config, workdir)
      _report(workdir)
  except ConfigError as e:
    _fail(str(e))


def _report(workdir: str) -> None:
  """The study's table and figure, from its logs (on process 0, which wrote them)."""
  from analysis import study_results  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import hosts  # pylint: disable=g-import-not-at-top
  if hosts.is_writer():
    print(study_results.write_study_outputs(workdir))
    print(f'\nresults in {workdir}: {", ".join(study_results.OUTPUTS)}, and per run '
          '<variant>/seed_<k>/metrics.jsonl')


def _join_processes(values: flags.FlagValues) -> None:
  """``--distributed``: joins the other processes; a one-line error if that fails."""
  joining = {name: values[name].value
             for name in ('coordinator_address', 'num_processes', 'process_id')}
  if not values.distributed:
    given = [f'--{name}' for name, value in joining.items() if value is not None]
    if given:
      _fail(f'{", ".join(given)} needs --distributed')
    return
  if values.dry_run:
    _fail('--dry_run plans on one machine: drop --distributed')
  from lr_study.runtime import hosts  # pylint: disable=g-import-not-at-top
  try:
    hosts.initialize(**joining)
  except (RuntimeError, ValueError) as e:
    _fail(f'--distributed: {_one_line(e, [])}')


def _dry_run(config: ml_collections.ConfigDict, workdir: str, num_devices: int) -> None:
  from lr_study import study  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import run_files  # pylint: disable=g-import-not-at-top
  from lr_study.training.setup import prepare_run  # pylint: disable=g-import-not-at-top

  plans = {name: prepare_run(study.resolve_variant(config, name), num_devices).plan
           for name in dict.fromkeys(name for name, _ in study.run_names(config))}
  for name, plan in plans.items():
    os.makedirs(os.path.join(workdir, name), exist_ok=True)
    run_files.write_json(os.path.join(workdir, name, run_files.PLAN), plan.to_json())
    print(f'\n== {name}\n{plan.format_table()}')
  print(f'\nplans written to {workdir}/<variant>/{run_files.PLAN}')
  print(json.dumps({name: plan.total_updates for name, plan in plans.items()}))


if __name__ == '__main__':
  _define_flags()
  app.run(main, flags_parser=parse_flags)
