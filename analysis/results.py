r"""Every published number and figure from one command, from fresh runs of the code as it is.

    make results                     # python -m analysis.results [--mnist_dir=DIR]
    python -m analysis.results --only=digits,digits_avx --epochs_scale=0.1 --seeds=0 \
        --runs_dir=/tmp/r --docs_dir=/tmp/docs --readme=/tmp/README.md \
        --results_page=/tmp/results.md   # the plumbing in a minute, written elsewhere

runs the studies of ``analysis.results_studies`` afresh, recording each and drawing its
figures (``analysis.reproduce``), then rewrites the results blocks of README and
``docs/results.md`` from the results files (``analysis.publish``); ``--publish_only``
does just that. ``--epochs_scale`` and ``--seeds`` (a shortened run, to try the
plumbing) are refused with the default ``--docs_dir``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Sequence

from absl import app, flags, logging

from analysis.publish import publish
from analysis.reproduce import ROOT, run_all
from analysis.results_studies import STUDIES


def main(argv: Sequence[str]) -> None:
  del argv
  logging.set_verbosity(logging.ERROR)
  os.chdir(ROOT)  # relative paths are the checkout's, as launch.py's are
  values = flags.FLAGS
  known = [s.name for s in STUDIES] + ['trajectory']
  names = [n.strip() for n in values.only.split(',')] if values.only else known
  unknown = sorted(set(names) - set(known))
  if unknown:
    sys.exit(f'analysis.results: error: unknown --only {", ".join(unknown)} '
             f'(known: {", ".join(known)})')
  shortened = values.epochs_scale != 1.0 or values.seeds
  if shortened and not values.publish_only and os.path.abspath(values.docs_dir) == os.path.join(
      ROOT, 'docs'):
    sys.exit('analysis.results: error: --epochs_scale or --seeds would publish a shortened '
             'run into docs/: give --docs_dir (and --readme, --results_page) elsewhere')
  if not values.publish_only:
    try:
      run_all(names, values.runs_dir, values.docs_dir, mnist_dir=values.mnist_dir,
              epochs_scale=values.epochs_scale, seeds=values.seeds)
    except subprocess.CalledProcessError as e:
      print(f'analysis.results: error: exit status {e.returncode} from '
            f'{" ".join(map(shlex.quote, e.cmd))}; the studies before it are written',
            file=sys.stderr)
      sys.exit(e.returncode or 1)
  for page in (values.readme, values.results_page):
    stale = publish(page, values.docs_dir)
    print(f'rewrote the results blocks of {page}'
          + (f'; left as they were (no results file): {", ".join(stale)}' if stale else ''))


if __name__ == '__main__':
  flags.DEFINE_string('only', None, 'Comma-separated studies to run (default all): '
                      + ', '.join(s.name for s in STUDIES) + ', trajectory.')
  flags.DEFINE_string('mnist_dir', None, "MNIST's four files (offline); default: download.")
  flags.DEFINE_float('epochs_scale', 1.0, 'A shortened plumbing run (not for publishing).')
  flags.DEFINE_string('seeds', None, "Seeds for every study (e.g. '0,'; default each study's).")
  flags.DEFINE_string('runs_dir', 'runs/results', 'Where the runs go (each study deleted first).')
  flags.DEFINE_string('docs_dir', 'docs', 'Where figures/ and results/ go.')
  flags.DEFINE_string('readme', 'README.md', 'The README whose results blocks are rewritten.')
  flags.DEFINE_string('results_page', 'docs/results.md', 'The results page, likewise.')
  flags.DEFINE_bool('publish_only', False, 'Rewrite the blocks from the results files alone.')
  app.run(main)
