"""The ``launch.py`` commands of ``make results`` (``analysis.results``), in their order.

* ``digits_avx`` runs the default study again with ``--xla_cpu_max_isa=AVX`` added to
  ``XLA_FLAGS``: how far another instruction set moves the published means.
* ``lecture_raschka_range`` is the LR range test of ``experiments/lecture_raschka.py``;
  the triangular CLR of ``lecture_raschka`` trains between the bounds it finds
  (``TRIANGULAR`` overrides, ``analysis.reproduce``).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from typing import Sequence

AVX = '--xla_cpu_max_isa=AVX'
TRIANGULAR = 'variants.triangular.lr_schedule'


@dataclasses.dataclass(frozen=True)
class Study:
  """One ``launch.py`` command of the results: its name (the results file's and the run
  directory's), config, whether it reads MNIST, where its figures go (None: none), a
  seeds override, flags to add to ``XLA_FLAGS``, and whether ``--epochs_scale`` may
  shorten it (not the one-epoch range test)."""
  name: str
  config: str
  mnist: bool = False
  figures: str | None = None
  seeds: str | None = None
  xla_flags: str = ''
  shortens: bool = True


STUDIES = (
    Study('digits', 'experiments/digits_study.py', figures='digits'),
    Study('digits_avx', 'experiments/digits_study.py', xla_flags=AVX),
    Study('mnist', 'experiments/mnist_decay_vs_batch.py', mnist=True, figures='mnist'),
    Study('mnist_ramp', 'experiments/mnist_decay_vs_batch.py:ramp', mnist=True),
    Study('lecture_ng', 'experiments/lecture_ng.py', mnist=True, figures='lecture_ng',
          seeds='0,'),
    Study('lecture_raschka_range', 'experiments/lecture_raschka.py:lr_range_test', mnist=True,
          seeds='0,', shortens=False),
    Study('lecture_raschka', 'experiments/lecture_raschka.py', mnist=True,
          figures='lecture_raschka', seeds='0,'),
)


def launch_args(study: Study, workdir: str, *, mnist_dir: str | None, epochs_scale: float,
                seeds: str | None, extra: Sequence[str] = ()) -> list[str]:
  """The ``launch.py`` arguments of ``study`` into ``workdir``."""
  args = [f'--config={study.config}', f'--workdir={workdir}']
  if study.mnist:
    args.append(f'--config.dataset.manual_dir={mnist_dir}' if mnist_dir
                else '--config.dataset.download=True')
  if seeds or study.seeds:
    args.append(f'--config.seeds={seeds or study.seeds}')
  if epochs_scale != 1.0 and study.shortens:
    args.append(f'--config.epochs_scale={epochs_scale:g}')
  return args + list(extra)


def study_env(study: Study) -> dict[str, str]:
  """The environment of the study's run: this one, its ``xla_flags`` added."""
  env = dict(os.environ)
  if study.xla_flags:
    env['XLA_FLAGS'] = f'{env.get("XLA_FLAGS", "")} {study.xla_flags}'.strip()
  return env


def shell_command(study: Study, args: Sequence[str]) -> str:
  """The study's command as a user would type it (its ``XLA_FLAGS`` first)."""
  prefix = f'XLA_FLAGS={shlex.quote(study_env(study)["XLA_FLAGS"])} ' if study.xla_flags else ''
  return prefix + ' '.join(['python launch.py', *map(shlex.quote, args)])

