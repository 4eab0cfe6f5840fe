"""The results files of ``make results`` (``analysis.results``) and the pages' tables
rendered from them.

A study's results go to ``DOCS_DIR/results/<name>.json`` (strict JSON) and ``<name>.md``
(its command, table, warnings and environment). Every block of README and
``docs/results.md`` between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` is
rewritten from the results files (:data:`BLOCKS`); a block whose files are missing is
left as it is and named. ``tests/test_results.py`` checks that each block is what its
files render, and that every number of its tables is in them.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from typing import Any, Callable, Mapping, Sequence

from analysis.results_studies import AVX
from lr_study.runtime import run_files


def write_results(docs_dir: str, name: str, results: dict[str, Any]) -> None:
  """Writes ``results`` to ``DOCS_DIR/results/<name>.json`` and, with a table, ``.md``."""
  out = os.path.join(docs_dir, 'results')
  os.makedirs(out, exist_ok=True)
  run_files.write_json(os.path.join(out, f'{name}.json'), results)
  if 'table' in results:
    with open(os.path.join(out, f'{name}.md'), 'w') as f:
      f.write(f'{results["command"]}\n\n{markdown_table(results["table"])}\n\n'
              + ''.join(f'{line}\n' for line in results['notes'])
              + f'environment: {results["environment_line"]}\n')


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
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
  text = [markdown_table(results['table'], columns), '',
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
  return '\n'.join([markdown_table(rows, columns), '', _made_on(files['mnist'])]
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
  return markdown_table(described, [first, *columns], [first, *columns.values()])


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
