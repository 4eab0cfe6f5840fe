r"""The paper's figures, from the run logs alone (no rerun).

    python -m analysis.figures --workdir=runs/digits [--workdir=runs/digits_more_seeds ...] \
        --out_dir=runs/digits/figures [--figure=accuracy ...]

reads every run under each WORKDIR (``analysis.runs``: studies, sweep points, dry runs)
and writes each figure as ``<name>.png`` and ``<name>.pdf`` to OUT_DIR (default
``<first WORKDIR>/figures``):

* ``schedules``: the LR, the batch size and (when logged) the noise scale g against
  epochs, per variant (Smith et al. 2018, Figure 1); from the train log where it logs
  the LR, else the metrics, else the plan (a dry run);
* ``accuracy``: test accuracy against epochs and against parameter updates (Figure 2);
* ``loss``: training cross-entropy against epochs and against parameter updates;
* ``wall_clock``: test accuracy against training seconds;
* ``optimizers``: one panel per optimizer (``config.optimizer.name``), the schedules
  compared within each, test accuracy against epochs;
* ``gradient_noise``: the measured gradient noise scale B_simple
  (``gradient_noise_scale`` in the metrics) over training, the batch size on the
  same axis; skipped, with a printed line, when no run logs a measured value.

Every curve is the mean over seeds (``analysis.curves``), the band ± one standard
deviation (said in each figure's title). Each variant keeps one colour, line style and
marker throughout, the markers staggered, so that curves which coincide (decay and hybrid
follow increase until the first boundary) stay visible. Past ``MAX_DISTINCT`` groups (a
sweep), the styles are factored instead (``analysis.styles``): colour by the swept key
with the most values (a colour map past 10), line style by the next (or the variant),
marker by the third, and the legend keys each value once (``init_value=0.1``,
``decay``), not every group. Parameter updates (as in the paper's Figure 5), learning
rates, losses and noise scales are drawn on a log axis where they span more than a
decade; batch sizes on a base-2 axis; epochs and seconds linearly from 0. One legend per
figure, below its panels, so that it covers no curve. Titles name the dataset, model and
optimizer from each run's metadata (``analysis.titles``). A run whose summary says
``"status": "diverged"`` is drawn alone, up to its divergence, and
labelled "diverged at update U"; it never enters a mean.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

from absl import app, flags

from analysis import metric_figures, schedule_figures
from analysis import runs as runs_lib
from analysis.drawing import save
from analysis.runs import Run
from lr_study.errors import ConfigError
from lr_study.runtime.workdir import check_workdir

FIGURES = ('schedules', 'accuracy', 'loss', 'wall_clock', 'optimizers', 'gradient_noise')

BUILDERS: dict[str, Callable[[Sequence[Run]], Any | None]] = {
    'schedules': schedule_figures.schedules_figure,
    'accuracy': metric_figures.accuracy_figure, 'loss': metric_figures.loss_figure,
    'wall_clock': metric_figures.wall_clock_figure,
    'optimizers': metric_figures.optimizers_figure,
    'gradient_noise': schedule_figures.gradient_noise_figure,
}

SKIPPED = {
    'gradient_noise': 'no metrics row has a measured gradient_noise_scale (B_simple)',
}


def make_figures(runs: Sequence[Run], out_dir: str, names: Sequence[str] = FIGURES,
                 log: Callable[[str], None] = print) -> list[str]:
  """Writes each named figure of ``runs`` to ``out_dir`` (PNG and PDF); returns the paths.

  A figure with nothing to draw is skipped, with a line to ``log``.
  """
  paths = []
  for name in names:
    fig = BUILDERS[name](runs)
    if fig is None:
      log(f'{name}: skipped, {SKIPPED.get(name, "no run has logged metrics")}')
      continue
    paths.extend(save(fig, out_dir, name))
  return paths


def main(argv: list[str]) -> None:
  del argv
  workdirs = flags.FLAGS.workdir
  try:
    runs = runs_lib.load_runs(workdirs)
    if not runs:
      raise FileNotFoundError(f'no runs under {", ".join(workdirs)}')
    out_dir = check_workdir(flags.FLAGS.out_dir or os.path.join(workdirs[0], 'figures'),
                            flag='--out_dir')
    for path in make_figures(runs, out_dir, flags.FLAGS.figure or FIGURES):
      print(f'wrote {path}')
  except (ConfigError, OSError) as e:  # a file or line that is not JSON, an unwritable out_dir
    print(f'analysis.figures: error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  flags.DEFINE_multi_string('workdir', None, 'A study directory (repeat for several).',
                            required=True)
  flags.DEFINE_string('out_dir', None, 'Where the figures go (default WORKDIR/figures).')
  flags.DEFINE_multi_enum('figure', None, FIGURES, 'A figure to draw (repeat; default all).')
  app.run(main)
