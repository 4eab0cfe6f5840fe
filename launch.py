r"""Runs a learning-rate / batch-size schedule study from an experiment config.

    python launch.py                                  # the default study (digits, 3 schedules)
    python launch.py --config=experiments/mnist_decay_vs_batch.py --workdir=runs/mnist
    python launch.py --config=experiments/cifar10_wrn.py:hybrid --config.num_epochs=50
    python launch.py --config=experiments/cifar10_wrn.py --dry_run   # the plan only
    python launch.py --sweep=learning_rate=0.02,0.05 --sweep=batch_size=8,16
    python launch.py --config=experiments/cifar10_wrn.py --distributed  # on every host

A config without a variant runs all its variants, each for every seed in
``config.seeds``, into ``WORKDIR/<variant>/seed_<k>/`` (``WORKDIR/<point>/...`` for each
point of a sweep); then it prints the study table and writes ``table.md``, ``table.csv``
and ``figure.{png,pdf}`` to WORKDIR. WORKDIR defaults to ``runs/<config>[-<variants>]``,
so the same command resumes the same study: a run directory that holds a checkpoint
continues from it, a finished one trains nothing. ``--restart`` moves the old runs aside
first. Each config key may be overridden once (``--config.seeds=0,1,2``). Bad flags or
config values stop with a one-line error and exit status 2 before any data is loaded.

``--distributed`` runs one study over several processes (every host of a TPU pod slice,
or several GPU machines): each runs the same command, ``jax.distributed.initialize``
joins them (its arguments are detected on Cloud TPU, SLURM, Open MPI and Kubernetes;
elsewhere pass ``--coordinator_address``, ``--num_processes`` and ``--process_id``), and
process 0 writes WORKDIR.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from typing import NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from lr_study.experiment import explain as _explain, workdir_name

DEFAULT_CONFIG = 'experiments/digits_study.py'


def _fail(message: str) -> NoReturn:
  print(f'launch.py: error: {message}', file=sys.stderr)
  sys.exit(2)


def _define_flags() -> None:
  try:
    config_flags.DEFINE_config_file(
        'config', DEFAULT_CONFIG, 'Experiment config: experiments/<file>.py[:variant], with '
        '--config.a.b=value overrides.', lock_config=True)
  except (AttributeError, KeyError, SyntaxError) as e:
    _fail(_explain(e, sys.argv))
  flags.DEFINE_string('workdir', None, 'Where the runs go; default runs/<config>[-<variants>].')
  flags.DEFINE_bool('dry_run', False, 'Print and write the training plan only: no data, no '
                    'accelerator.')
  flags.DEFINE_integer('num_devices', 1, 'Devices the dry run plans for (a real run uses all).',
                       lower_bound=1)
  flags.DEFINE_bool('restart', False, 'Move the old runs in WORKDIR aside and start afresh.')
  flags.DEFINE_multi_string('sweep', [], 'KEY=v1,v2,...: one study per value of the config '
                            'key KEY; repeated flags form a grid (lr_study.sweep).')
  flags.DEFINE_string('sweep_shard', None, 'i/n: run only the sweep points whose index is i '
                      'mod n (0 <= i < n): shards at once into one WORKDIR '
                      '(lr_study.sweep_shards).')
  flags.DEFINE_bool('distributed', False, 'Join the processes of a multi-host run '
                    '(jax.distributed.initialize) before touching a device.')
  flags.DEFINE_string('coordinator_address', None, 'With --distributed: host:port of '
                      'process 0, where JAX cannot detect it.')
  flags.DEFINE_integer('num_processes', None, 'With --distributed: the number of processes.')
  flags.DEFINE_integer('process_id', None, 'With --distributed: this process, 0-based.')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parse, with every error in one line; each config key overridden at most once."""
  try:
    rest = flags.FLAGS(argv)
    flags.FLAGS.config.to_dict()  # a config that failed to load raises its error here
  except (flags.Error, OSError, AttributeError, KeyError, ValueError, TypeError,
          SyntaxError) as e:
    _fail(_explain(e, argv))
  for key in config_flags.get_override_values(flags.FLAGS['config']):
    given = sum(re.match(rf'--?config\.{re.escape(key)}(=|$)', arg) is not None for arg in argv)
    if given > 1:
      _fail(f'--config.{key} is given {given} times: give each config key once (a tuple '
            f'as --config.{key}=a,b)')
  return rest


def _default_workdir(config_arg: str, epochs_scale: float) -> str:
  """``runs/<config>[-<variants>][-epochs_scale=<s>]``: the same command resumes the same study."""
  return os.path.join('runs', workdir_name(config_arg, epochs_scale))


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}')
  logging.set_verbosity(logging.ERROR)
  from lr_study import shorten, sweep, sweep_shards  # pylint: disable=g-import-not-at-top
  from lr_study.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from lr_study.runtime.preemption import Preempted  # pylint: disable=g-import-not-at-top
  from lr_study.runtime.workdir import (  # pylint: disable=g-import-not-at-top
      check_workdir, move_aside)

  values = flags.FLAGS
  if values.workdir is not None and not values.workdir.strip():
    _fail('--workdir is empty: name a directory, or leave the flag out for runs/<config>')
  workdir = values.workdir or _default_workdir(config_flags.get_config_filename(values['config']),
                                               values.config.get('epochs_scale', 1.0))
  try:
    base, every_point = sweep.sweep_points(values.config, values.sweep,
                                           config_flags.get_override_values(values['config']))
    workdir = values.workdir or sweep_shards.sweep_workdir(workdir, every_point)  # beside it
    shard = sweep_shards.parse_shard(values.sweep_shard)
    points = sweep_shards.select_shard(every_point, shard)
    if shard and values.restart:
      raise ConfigError('--restart with --sweep_shard would move the other shards\' runs '
                        f'aside: move {workdir} aside once, then start the shards')
    shortened = shorten.describe(base)  # a bad --config.epochs_scale stops here
    if shortened:
      print(shortened)
    if values.dry_run:
      for name, point in points:
        _dry_run(sweep.apply_point(base, point), _point_dir(workdir, name), values.num_devices)
      return
    _join_processes(values)
    from lr_study import runner  # pylint: disable=g-import-not-at-top
    from lr_study.runtime import hosts  # pylint: disable=g-import-not-at-top
    configs = [sweep.apply_point(base, point) for _, point in points]
    setups = [runner.prepare_study(config) for config in configs]  # before any file changes
    if hosts.is_writer():  # process 0 alone writes WORKDIR
      check_workdir(workdir, checkpoints=True)
      moved = move_aside(workdir) if values.restart else None
      if moved:
        print(f'--restart: the old runs are in {moved}')
    for (name, point), config, prepared in zip(points, configs, setups):
      if name:
        print(f'== sweep point {name}', flush=True)
      runner.run_study(config, _point_dir(workdir, name), sweep=sweep.jsonable(point),
                       setups=prepared)
    if hosts.is_writer():
      if shard and not sweep_shards.all_finished(workdir, base, every_point):
        print(f'--sweep_shard={values.sweep_shard}: its {len(points)} point(s) are done; the '
              'last shard to finish writes the table, or at any time: python -m '
              f'analysis.study_results --workdir={workdir}')
      else:
        _report(workdir)
  except ConfigError as e:
    _fail(str(e))
  except Preempted as e:
    print(f'launch.py: {e}', file=sys.stderr)
    sys.exit(143)
  except KeyboardInterrupt:
    print('launch.py: interrupted (Ctrl-C); the same command resumes from the last checkpoint',
          file=sys.stderr)
    sys.exit(130)
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    _fail(f'no space left on device for {e.filename or workdir}: free some, then the same '
          'command resumes from the last checkpoint')


def _point_dir(workdir: str, name: str) -> str:
  """Where a sweep point's study goes: WORKDIR/<point>, or WORKDIR itself without a sweep."""
  return os.path.join(workdir, name) if name else workdir


def _report(workdir: str) -> None:
  """The study's table and figure, from its logs."""
  from analysis import study_results  # pylint: disable=g-import-not-at-top
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
  from lr_study.runtime import hosts  # pylint: disable=g-import-not-at-top
  try:
    hosts.initialize(**joining)
  except (RuntimeError, ValueError) as e:
    _fail(f'--distributed: {_explain(e)}')


def _dry_run(config, workdir: str, num_devices: int) -> None:
  from lr_study import study  # pylint: disable=g-import-not-at-top
  from lr_study.plan_table import format_plan  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import run_files  # pylint: disable=g-import-not-at-top
  from lr_study.runtime.workdir import check_workdir  # pylint: disable=g-import-not-at-top
  from lr_study.training.setup import prepare_run  # pylint: disable=g-import-not-at-top

  if flags.FLAGS.distributed:
    _fail('--dry_run plans on one machine: drop --distributed')
  plans = {name: prepare_run(run, num_devices).plan
           for name, run in study.variant_configs(config).items()}
  check_workdir(workdir)
  for name, plan in plans.items():
    run_files.make_dirs(os.path.join(workdir, name))
    run_files.write_json(os.path.join(workdir, name, run_files.PLAN), plan.to_json())
    print(f'\n== {name}\n{format_plan(plan)}')
  print(f'\nplans written to {workdir}/<variant>/{run_files.PLAN}')
  print(json.dumps({name: plan.total_updates for name, plan in plans.items()}))


if __name__ == '__main__':
  _define_flags()
  app.run(main, flags_parser=parse_flags)
