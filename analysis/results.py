r"""Every published number and figure from one command, from fresh runs of the code as it is.

    make results                     # python -m analysis.results [--mnist_dir=DIR]
    python -m analysis.results --only=digits,digits_avx --epochs_scale=0.1 --seeds=0 \
        --runs_dir=/tmp/r --docs_dir=/tmp/docs --readme=/tmp/README.md \
        --results_page=/tmp/results.md   # the plumbing in a minute, written elsewhere

For each study of :data:`STUDIES`, in order, it deletes ``RUNS_DIR/<name>`` (a fresh run,
never a resume of older code), runs ``python launch.py --config=... --workdir=RUNS_DIR/<name>``
as a user would, draws the study's figures (``analysis.figures``) into
``DOCS_DIR/figures/<dir>/`` (removing its earlier figures there first), and writes
``DOCS_DIR/results/<name>.json`` (strict JSON) and ``<name>.md``: the command, its seconds,
the environment of the runs (``lr_study.runtime.environment``: CPU, the ISA XLA compiled
for, jaxlib, commit), the study table's rows (``analysis.study_results``, plus each
variant's batch sizes as trained), its warnings and one row per run.

* ``digits_avx`` runs the default study again with ``--xla_cpu_max_isa=AVX`` added to
  ``XLA_FLAGS``: how far another instruction set moves the published means.
* ``lecture_raschka_range`` is the LR range test of ``experiments/lecture_raschka.py``;
  its CLR bounds (``analysis.lr_range_test.suggest_clr_bounds``, 4 significant digits)
  go to ``lecture_raschka_range.json`` and, as ``--config.variants.triangular.lr_schedule``
  overrides, to the ``lecture_raschka`` run after it: the triangular CLR always trains
  between the bounds its own range test found (the config's constants are the bounds of
  the committed file, ``tests/test_results.py``).

Then ``analysis.trajectory`` draws ``DOCS_DIR/figures/trajectory``, ``index.json`` records
the whole command (its seconds and environment; only when every study ran), and every block of README and ``docs/results.md`` between
``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` is rewritten from the results
files (:data:`BLOCKS`); a block whose files are missing is left as it is and named.
``tests/test_results.py`` checks that each block is what its files render, and that every
number of its tables is in them. Relative paths are the checkout's (``launch.py``'s own).
``--epochs_scale`` and ``--seeds`` (a shortened run, to try the plumbing) are refused with
the default ``--docs_dir``.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Sequence

from absl import app, flags, logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT_KEYS = ('devices', 'cpu', 'host_cpus', 'xla_flags', 'packages', 'git', 'python')
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


# --- running


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


def _env(study: Study) -> dict[str, str]:
  env = dict(os.environ)
  if study.xla_flags:
    env['XLA_FLAGS'] = f'{env.get("XLA_FLAGS", "")} {study.xla_flags}'.strip()
  return env


def _command(study: Study, args: Sequence[str]) -> str:
  prefix = f'XLA_FLAGS={shlex.quote(_env(study)["XLA_FLAGS"])} ' if study.xla_flags else ''
  return prefix + ' '.join(['python launch.py', *map(shlex.quote, args)])


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
  print(f'\n$ {" ".join(map(shlex.quote, argv))}', flush=True)
  subprocess.run(list(argv), cwd=ROOT, env=dict(env or os.environ), check=True)


def batch_sizes(group: Sequence[Any]) -> str:
  """A group's batch sizes as trained: ``64 → 256 → 1024``, or ``64 → … → 1024`` past 4
  sizes; seeds that differ show each. From the run's last ``plan.json`` (a dynamic
  schedule's re-plans keep the epochs done), else its metrics (B at each evaluation)."""
  texts = []
  for run in group:
    rows = (run.plan or {}).get('phases') or run.metrics
    sizes = [int(r['batch_size']) for r in rows if isinstance(r.get('batch_size'), int)]
    sizes = [b for i, b in enumerate(sizes) if i == 0 or b != sizes[i - 1]]
    if not sizes:
      continue
    texts.append(' → '.join(map(str, sizes)) if len(sizes) <= 4
                 else f'{sizes[0]} → … → {sizes[-1]}')
  return ' / '.join(dict.fromkeys(texts))


def record(study: Study, workdir: str, command: str, seconds: float) -> dict[str, Any]:
  """The results file of a finished study."""
  from analysis import runs as runs_lib  # pylint: disable=g-import-not-at-top
  from analysis import study_results  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import environment  # pylint: disable=g-import-not-at-top
  runs = study_results.finished_runs(workdir)
  if not runs:
    raise FileNotFoundError(f'{study.name}: no finished run under {workdir}')
  rows = study_results.table_rows(runs)
  for row, group in zip(rows, runs_lib.group_runs(runs).values()):
    row['batch sizes'] = batch_sizes(group)
  env = {key: (runs[0].metadata or {}).get(key) for key in ENVIRONMENT_KEYS}
  tested = [r.metrics[-1].get('test_examples') for r in runs if r.metrics]
  return {'name': study.name, 'config': study.config, 'command': command,
          'seconds': round(seconds, 1), 'environment': env,
          'environment_line': environment.describe(env),
          'test_examples': next((t for t in tested if isinstance(t, int)), None),
          'table': rows, 'notes': study_results.warnings(runs),
          'runs': [{k: v for k, v in row.items() if k != 'workdir'}
                   for row in study_results.run_rows(runs)]}


def clr_bounds(run_dir: str) -> dict[str, float]:
  """The CLR bounds of an LR range test's run, at 4 significant digits (as printed)."""
  from analysis import lr_range_test  # pylint: disable=g-import-not-at-top
  rows = lr_range_test.read_train_log(run_dir)
  window = lr_range_test.default_window(len(rows))
  base_lr, max_lr = lr_range_test.suggest_clr_bounds(
      [r['learning_rate'] for r in rows], [r['train_loss'] for r in rows], window=window)
  return {'base_lr': float(f'{base_lr:.4g}'), 'max_lr': float(f'{max_lr:.4g}'),
          'window': window}


def clr_flags(bounds: Mapping[str, float]) -> list[str]:
  return [f'--config.{TRIANGULAR}.base_lr={bounds["base_lr"]!r}',
          f'--config.{TRIANGULAR}.max_lr={bounds["max_lr"]!r}']


def _write(docs_dir: str, name: str, results: dict[str, Any]) -> None:
  from lr_study.runtime import run_files  # pylint: disable=g-import-not-at-top
  out = os.path.join(docs_dir, 'results')
  os.makedirs(out, exist_ok=True)
  run_files.write_json(os.path.join(out, f'{name}.json'), results)
  if 'table' in results:
    with open(os.path.join(out, f'{name}.md'), 'w') as f:
      f.write(f'{results["command"]}\n\n{_markdown(results["table"])}\n\n'
              + ''.join(f'{line}\n' for line in results['notes'])
              + f'environment: {results["environment_line"]}\n')


def _figures(workdir: str, out_dir: str) -> None:
  from analysis import figures  # pylint: disable=g-import-not-at-top
  from analysis import runs as runs_lib  # pylint: disable=g-import-not-at-top
  for name in figures.FIGURES:  # a figure the logs no longer give must not stay behind
    for path in glob.glob(os.path.join(out_dir, f'{name}.*')):
      os.remove(path)
  for path in figures.make_figures(runs_lib.load_runs(workdir), out_dir):
    print(f'wrote {path}')


def run_all(names: Sequence[str], runs_dir: str, docs_dir: str, *, mnist_dir: str | None,
            epochs_scale: float = 1.0, seeds: str | None = None) -> dict[str, Any]:
  """Runs the studies ``names`` (and the trajectories, with ``'trajectory'``), writing their
  results files and figures; returns ``index.json``'s record."""
  started = time.monotonic()
  done = []
  for study in (s for s in STUDIES if s.name in names):
    workdir = os.path.join(runs_dir, study.name)
    shutil.rmtree(workdir, ignore_errors=True)
    extra = []
    if study.name == 'lecture_raschka' and 'lecture_raschka_range' in names:
      with open(os.path.join(docs_dir, 'results', 'lecture_raschka_range.json')) as f:
        extra = clr_flags(json.load(f)['bounds'])
    args = launch_args(study, workdir, mnist_dir=mnist_dir, epochs_scale=epochs_scale,
                       seeds=seeds, extra=extra)
    begin = time.monotonic()
    _run([sys.executable, 'launch.py', *args], _env(study))
    seconds = time.monotonic() - begin
    results = record(study, workdir, _command(study, args), seconds)
    if study.name == 'lecture_raschka_range':
      run_dir = os.path.join(workdir, 'lr_range_test', f'seed_{(seeds or study.seeds)[0]}')
      results['bounds'] = clr_bounds(run_dir)
      from analysis import lr_range_test  # pylint: disable=g-import-not-at-top
      out = os.path.join(docs_dir, 'figures', 'lecture_raschka')
      os.makedirs(out, exist_ok=True)
      rows = lr_range_test.read_train_log(run_dir)
      lr_range_test.plot(os.path.join(out, 'lr_range_test.png'), rows,
                         (results['bounds']['base_lr'], results['bounds']['max_lr']),
                         results['bounds']['window'])
      results = {k: results[k] for k in ('name', 'config', 'command', 'seconds', 'environment',
                                         'environment_line', 'bounds', 'runs')}
    _write(docs_dir, study.name, results)
    if study.figures:
      _figures(workdir, os.path.join(docs_dir, 'figures', study.figures))
    done.append(study.name)
  if 'trajectory' in names:
    _run([sys.executable, '-m', 'analysis.trajectory',
          f'--out_dir={os.path.join(docs_dir, "figures")}'])
    done.append('trajectory')
  from lr_study.runtime import environment  # pylint: disable=g-import-not-at-top
  index = {'command': 'make results', 'argv': sys.argv, 'studies': done,
           'seconds': round(time.monotonic() - started, 1), 'epochs_scale': epochs_scale,
           'environment': environment.environment(with_devices=False)}
  if set(done) == {s.name for s in STUDIES} | {'trajectory'}:  # a whole run's time only
    _write(docs_dir, 'index', index)
  return index


# --- publishing: the marked blocks of README.md and docs/results.md


def _markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
              headers: Sequence[str] | None = None) -> str:
  columns = list(columns or [c for c in rows[0] if c != 'batch sizes'])
  lines = ['| ' + ' | '.join(headers or columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(str(row.get(c, '')) for c in columns) + ' |' for row in rows]
  return '\n'.join(lines)


def _mean(results: Mapping[str, Any], variant: str) -> float:
  values = [100 * r['final_test_accuracy'] for r in results['runs']
            if r['variant'] == variant and isinstance(r.get('final_test_accuracy'), float)]
  return statistics.fmean(values) if values else math.nan


def _row(results: Mapping[str, Any], variant: str) -> Mapping[str, Any]:
  return next(r for r in results['table'] if r['schedule'] == variant)


def _updates(results: Mapping[str, Any], variant: str) -> float:
  return float(str(_row(results, variant)['parameter updates']).split('–')[0].replace(',', ''))


def _made_on(results: Mapping[str, Any]) -> str:
  return f'Made by `{results["command"]}` on {results["environment_line"]}.'


def _digits(files: Mapping[str, Any]) -> str:
  results = files['digits']
  columns = ['schedule', 'final test accuracy (%)', 'seeds', 'epochs', 'parameter updates',
             'examples seen']
  decay, increase = _mean(results, 'decay'), _mean(results, 'increase')
  spreads = [_row(results, v)['final test accuracy (%)'].split(' ± ')[-1]
             for v in ('decay', 'hybrid', 'increase')]
  image = 100 / results['test_examples'] if results.get('test_examples') else math.nan
  gap = increase - decay
  spread = ('one seed' if '—' in spreads else
            f'the spread over seeds is {min(spreads, key=float)} to {max(spreads, key=float)}')
  text = [_markdown(results['table'], columns), '',
          f'Increasing the batch ends {abs(gap):.2f} points {"below" if gap < 0 else "above"} '
          f'decaying the LR (one test image is {image:.2f} points; {spread}) with '
          f'{_updates(results, "decay") / _updates(results, "increase"):.1f}× fewer updates. '
          + _made_on(results)]
  if 'digits_avx' in files:
    other = files['digits_avx']
    means = {v: _mean(other, v) for v in ('decay', 'hybrid', 'increase')}
    moved = max(abs(means[v] - _mean(results, v)) for v in means)
    text.append(f'With `XLA_FLAGS={AVX}` (XLA compiling for AVX) the same runs end at '
                + ', '.join(f'{v} {m:.2f}' for v, m in means.items())
                + f': the means move by up to {moved:.2f} points.')
  return '\n'.join(text)


def _mnist(files: Mapping[str, Any]) -> str:
  rows = list(files['mnist']['table']) + list(files.get('mnist_ramp', {}).get('table', []))
  columns = ['schedule', 'batch sizes', 'final test accuracy (%)', 'parameter updates',
             'wall time (s)']
  return '\n'.join([_markdown(rows, columns), '', _made_on(files['mnist'])]
                   + ([_made_on(files['mnist_ramp'])] if 'mnist_ramp' in files else []))


NG = {'constant': 'constant α0', 'inverse_time': 'α0/(1 + epoch_num): 0.1, 0.0667, 0.05, 0.04, …',
      'power': '0.95^epoch_num · α0', 'inverse_sqrt': 'α0/√epoch_num',
      'inverse_sqrt_update': 'α0/√t, per mini-batch', 'staircase': 'staircase, halved every 4 epochs',
      'manual': 'manual: ÷10 at epoch 10'}
RASCHKA = {'exponential': 'exponential e^(−0.1·t)', 'step': 'halving every 5 epochs',
           'inverse_time': 'inverse decay', 'batch_64': 'batch 64', 'batch_1024': 'batch 1024',
           'triangular': 'triangular CLR (bounds from the LR range test)'}


def _described(rows: Sequence[Mapping[str, Any]], names: Mapping[str, str], first: str,
               columns: Mapping[str, str]) -> str:
  described = [{first: names.get(r['schedule'], r['schedule']),
                 **{k: str(v).replace(' ± —', '') for k, v in r.items()}}  # one seed
                for r in rows]
  return _markdown(described, [first, *columns], [first, *columns.values()])


def _lecture_ng(files: Mapping[str, Any]) -> str:
  results = files['lecture_ng']
  return '\n'.join([_described(results['table'], NG, 'Ng C2W2L09 (plain SGD, B = 64, α0 = 0.2, '
                               '20 epochs)', {'final test accuracy (%)': 'test accuracy (%)'}),
                    '', _made_on(results)])


def _lecture_raschka(files: Mapping[str, Any]) -> str:
  results = files['lecture_raschka']
  text = [_described(results['table'], RASCHKA, 'Raschka L12.1 (784-75-45-10 with batch norm '
                     'and dropout, momentum 0.9, 20 epochs)',
                     {'final test accuracy (%)': 'test accuracy (%)',
                      'parameter updates': 'updates'}), '']
  if 'lecture_raschka_range' in files:
    bounds = files['lecture_raschka_range']['bounds']
    text.append(f'The CLR bounds from its LR range test: base_lr = {bounds["base_lr"]:g}, '
                f'max_lr = {bounds["max_lr"]:g} (`docs/results/lecture_raschka_range.json`, '
                'figure `docs/figures/lecture_raschka/lr_range_test.png`). '
                + _made_on(files['lecture_raschka_range']))
  return '\n'.join(text + [_made_on(results)])


def _runtime(files: Mapping[str, Any]) -> str:
  index = files['index']
  minutes, seconds = divmod(int(round(index['seconds'])), 60)
  from lr_study.runtime import environment  # pylint: disable=g-import-not-at-top
  env = {**index['environment'], 'devices': files['digits']['environment'].get('devices')}
  return (f'`make results` last ran in {minutes} min {seconds:02d} s, on '
          f'{environment.describe(env)}.')


# name -> (the results files it reads, first required, then optional; its renderer)
BLOCKS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[Mapping[str, Any]], str]]] = {
    'digits': (('digits',), ('digits_avx',), _digits),
    'mnist': (('mnist',), ('mnist_ramp',), _mnist),
    'lecture_ng': (('lecture_ng',), (), _lecture_ng),
    'lecture_raschka': (('lecture_raschka',), ('lecture_raschka_range',), _lecture_raschka),
    'runtime': (('index', 'digits'), (), _runtime),
}
_BLOCK = re.compile(r'(<!-- results:(\w+) -->\n)(.*?)(<!-- /results:\2 -->)', re.DOTALL)


def load(docs_dir: str, names: Sequence[str]) -> dict[str, Any]:
  """The results files ``names`` under ``DOCS_DIR/results`` that exist."""
  files = {}
  for name in names:
    path = os.path.join(docs_dir, 'results', f'{name}.json')
    if os.path.exists(path):
      with open(path) as f:
        files[name] = json.load(f)
  return files


def render(name: str, docs_dir: str) -> str | None:
  """Block ``name`` as its results files give it; None when a required one is missing."""
  required, optional, renderer = BLOCKS[name]
  files = load(docs_dir, [*required, *optional])
  if not all(n in files for n in required):
    return None
  return renderer(files) + '\n'


def blocks(text: str) -> dict[str, str]:
  """The content of each marked block of ``text``."""
  return {m.group(2): m.group(3) for m in _BLOCK.finditer(text)}


def publish(path: str, docs_dir: str) -> list[str]:
  """Rewrites the marked blocks of the page ``path``; returns the blocks left as they were
  (missing results files)."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  stale = []

  def replace(match: re.Match) -> str:
    content = render(match.group(2), docs_dir)
    if content is None:
      stale.append(match.group(2))
      return match.group(0)
    return match.group(1) + content + match.group(4)

  text = _BLOCK.sub(replace, text)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)
  return stale


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
