"""Every published number comes from a command: the results tables of README.md and
docs/results.md are what `make results` (analysis.results) renders from the committed
results files docs/results/*.json, and every number in them is in those files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any, Iterator

import pytest

from analysis import publish, reproduce
from experiments import lecture_raschka

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')
PAGES = {'README.md': os.path.join(ROOT, 'README.md'),
         'docs/results.md': os.path.join(DOCS, 'results.md')}
NUMBER = re.compile(r'\d[\d,]*(?:\.\d+)?')


def _text(path: str) -> str:
  with open(path, encoding='utf-8') as f:
    return f.read()


def _strings(obj: Any) -> Iterator[str]:
  """Every string and number of a JSON value, as text."""
  if isinstance(obj, dict):
    for key, value in obj.items():
      yield str(key)
      yield from _strings(value)
  elif isinstance(obj, list):
    for value in obj:
      yield from _strings(value)
  elif obj is not None:
    yield str(obj)


def _missing(name: str, docs: str = DOCS) -> list[str]:
  required, _, _ = publish.BLOCKS[name]
  return [f'docs/results/{n}.json' for n in required
          if not os.path.exists(os.path.join(docs, 'results', f'{n}.json'))]


def _table_numbers(block: str) -> list[str]:
  """The numbers of a block's table rows (not headers), the first (descriptive) column
  left out."""
  lines = block.splitlines()
  numbers = []
  for i, line in enumerate(lines):
    header = i + 1 < len(lines) and set(lines[i + 1].strip()) <= set('|-')
    if not line.startswith('|') or set(line.strip()) <= set('|-') or header:
      continue
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    numbers += [n for cell in cells[1:] for n in NUMBER.findall(cell)]
  return numbers


def _unbacked(block: str, name: str, docs: str) -> list[str]:
  """The numbers of a block's tables that none of its results files holds."""
  required, optional, _ = publish.BLOCKS[name]
  files = publish.load(docs, [*required, *optional])
  held = set()
  for text in _strings(files):
    held.update(NUMBER.findall(text))
  return [n for n in _table_numbers(block) if n not in held]


@pytest.mark.parametrize('page', PAGES)
def test_every_results_block_is_what_its_committed_files_render(page):
  found = publish.blocks(_text(PAGES[page]))
  assert found, f'{page} has no results block'
  for name, content in found.items():
    assert not _missing(name), (f'{page}: block {name} needs {_missing(name)}: run `make '
                                'results` and commit docs/results and docs/figures')
    assert content == publish.render(name, DOCS), (
        f'{page}: block {name} differs from what docs/results/ gives: run `python -m '
        'analysis.results --publish_only`, or `make results`')


@pytest.mark.parametrize('page', PAGES)
def test_every_number_in_the_results_tables_is_in_the_committed_results_files(page):
  for name, content in publish.blocks(_text(PAGES[page])).items():
    assert not _missing(name), f'{page}: block {name} needs {_missing(name)}: run `make results`'
    assert not _unbacked(content, name, DOCS), f'{page}: block {name}'
  assert 'digits' in publish.blocks(_text(PAGES['README.md']))


def test_the_readme_table_names_its_environment_and_the_spread_of_another_isa():
  block = publish.blocks(_text(PAGES['README.md']))['digits']
  assert re.search(r'XLA compiling for \w+; jax [\d.]+, jaxlib [\d.]+; commit [0-9a-f]{7}', block), (
      'the README table names no environment: run `make results`')
  assert 'With `XLA_FLAGS=--xla_cpu_max_isa=AVX`' in block and 'points.' in block


def test_the_results_files_are_strict_json():
  def refuse(constant):
    raise ValueError(f'not strict JSON: {constant}')
  for path in sorted(os.listdir(os.path.join(DOCS, 'results'))):
    if path.endswith('.json'):
      json.loads(_text(os.path.join(DOCS, 'results', path)), parse_constant=refuse)


def test_raschkas_clr_bounds_are_those_of_the_committed_range_test():
  path = os.path.join(DOCS, 'results', 'lecture_raschka_range.json')
  bounds = json.loads(_text(path))['bounds']
  assert (lecture_raschka.CLR_BASE_LR, lecture_raschka.CLR_MAX_LR) == (
      bounds['base_lr'], bounds['max_lr']), (
      'set CLR_BASE_LR, CLR_MAX_LR in experiments/lecture_raschka.py to the bounds of '
      'docs/results/lecture_raschka_range.json')


# --- the command's plumbing --------------------------------------------------------------------


def test_clr_bounds_come_from_the_range_tests_train_log_to_4_digits(tmp_path):
  lrs = [1e-4 * 10 ** (4 * i / 199) for i in range(200)]
  losses = [2.3 - 2.0 * min(i, 120) / 120 + (0.1 * (i - 120) ** 2 / 100 if i > 120 else 0)
            for i in range(200)]
  with open(tmp_path / 'train_log.jsonl', 'w') as f:
    for i, (lr, loss) in enumerate(zip(lrs, losses)):
      f.write(json.dumps({'update': i, 'learning_rate': lr, 'train_loss': loss}) + '\n')
  bounds = reproduce.clr_bounds(str(tmp_path))
  assert bounds['base_lr'] == float(f'{bounds["base_lr"]:.4g}') < bounds['max_lr']
  assert reproduce.clr_flags(bounds) == [
      f'--config.variants.triangular.lr_schedule.base_lr={bounds["base_lr"]!r}',
      f'--config.variants.triangular.lr_schedule.max_lr={bounds["max_lr"]!r}']


def test_a_block_without_its_results_files_is_left_as_it_is_and_named(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('a\n<!-- results:mnist -->\nold\n<!-- /results:mnist -->\nb\n')
  assert publish.publish(str(page), str(tmp_path / 'docs')) == ['mnist']
  assert page.read_text() == 'a\n<!-- results:mnist -->\nold\n<!-- /results:mnist -->\nb\n'


def test_make_results_runs_the_results_module_with_its_flags():
  result = subprocess.run(['make', '-n', 'results', 'RESULTS_FLAGS=--only=digits'], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert re.search(r'-m analysis\.results +(--mnist_dir=\S+ +)?--only=digits$', result.stdout,
                   re.MULTILINE), result.stdout
  figures = subprocess.run(['make', '-n', 'figures'], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
  assert '-m analysis.results' in figures.stdout


@pytest.mark.slow
def test_a_tiny_results_run_writes_results_files_figures_and_the_blocks(tmp_path):
  docs = tmp_path / 'docs'
  docs.mkdir()
  readme, page = tmp_path / 'README.md', docs / 'results.md'
  shutil.copy(PAGES['README.md'], readme)
  shutil.copy(PAGES['docs/results.md'], page)
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one CPU device
  result = subprocess.run(
      [sys.executable, '-m', 'analysis.results', '--only=digits,digits_avx',
       '--epochs_scale=0.1', '--seeds=0,', f'--runs_dir={tmp_path}/runs', f'--docs_dir={docs}',
       f'--readme={readme}', f'--results_page={page}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  digits = json.loads((docs / 'results' / 'digits.json').read_text())
  avx = json.loads((docs / 'results' / 'digits_avx.json').read_text())
  assert [row['schedule'] for row in digits['table']] == ['decay', 'hybrid', 'increase']
  assert [row['epochs'] for row in digits['table']] == ['4'] * 3
  assert digits['command'] == ('python launch.py --config=experiments/digits_study.py '
                               f'--workdir={tmp_path}/runs/digits --config.seeds=0, '
                               '--config.epochs_scale=0.1')
  assert digits['environment']['cpu']['xla_cpu_max_isa'] is None
  assert avx['environment']['cpu']['xla_cpu_max_isa'] == 'AVX'
  assert avx['command'].startswith("XLA_FLAGS=--xla_cpu_max_isa=AVX python launch.py")
  assert len(digits['runs']) == 3 and digits['test_examples'] == 360
  assert sorted(os.listdir(docs / 'figures' / 'digits')) == sorted(
      f'{n}.{e}' for n in ('accuracy', 'loss', 'wall_clock', 'optimizers', 'schedules',
                           'gradient_noise') for e in ('png', 'pdf'))
  block = publish.blocks(readme.read_text())['digits']
  assert block == publish.render('digits', str(docs))
  assert '| decay | ' in block and 'XLA compiling for' in block
  assert _table_numbers(block)  # the check below has numbers to check
  assert not _unbacked(block, 'digits', str(docs))
  assert publish.blocks(page.read_text())['mnist'] == publish.blocks(
      _text(PAGES['docs/results.md']))['mnist']  # no results file: left as it was
  for name in ('mnist', 'mnist_ramp', 'lecture_ng', 'lecture_raschka'):  # every renderer
    shutil.copy(docs / 'results' / 'digits.json', docs / 'results' / f'{name}.json')
  shutil.copy(os.path.join(DOCS, 'results', 'lecture_raschka_range.json'), docs / 'results')
  # No index.json (a partial run): a runtime block, where the page has one, is left as it is.
  partial = [name for name in publish.blocks(page.read_text()) if name == 'runtime']
  assert publish.publish(str(page), str(docs)) == partial
  rendered = publish.blocks(page.read_text())
  assert rendered['mnist'].count('| decay | 4 → 4 → 4 → 4 |') == 0
  assert '| decay | 8 | ' in rendered['mnist'] and '| increase | 8 → 32 → 128 → 352 | ' in (
      rendered['mnist'])
  assert '| decay | 9' in rendered['lecture_ng'] and ' ± ' not in rendered['lecture_ng']
  assert 'base_lr = 0.0002425' in rendered['lecture_raschka']
  for name, block in rendered.items():
    assert not _unbacked(block, name, str(docs)), name
  assert not os.path.exists(docs / 'results' / 'index.json')
  index = {'seconds': 754.2, 'environment': digits['environment']}
  (docs / 'results' / 'index.json').write_text(json.dumps(index))
  assert publish.render('runtime', str(docs)).startswith('`make results` last ran in 12 min 34 s')


def test_a_shortened_run_is_refused_into_docs():
  result = subprocess.run([sys.executable, '-m', 'analysis.results', '--only=digits',
                           '--epochs_scale=0.1'], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 1 and 'would publish a shortened run' in result.stderr


def test_every_study_trains_before_any_results_file_or_figure_is_written(monkeypatch, tmp_path):
  events = []
  monkeypatch.setattr(reproduce, '_run', lambda argv, env=None: events.append(('run', argv)))
  keys = ('name', 'config', 'command', 'seconds', 'environment', 'environment_line', 'runs')
  monkeypatch.setattr(reproduce, 'record', lambda study, *a: dict.fromkeys(keys, study.name))
  monkeypatch.setattr(reproduce, 'clr_bounds', lambda run_dir: {'base_lr': 1e-4, 'max_lr': 0.1})
  monkeypatch.setattr(reproduce, '_range_test_figure', lambda *a: None)
  monkeypatch.setattr(reproduce, '_figures', lambda workdir, out: events.append(('draw', out)))
  monkeypatch.setattr(reproduce, 'write_results',
                      lambda docs, name, results: events.append(('write', name)))
  reproduce.run_all(['lecture_raschka_range', 'lecture_raschka'], str(tmp_path / 'runs'),
                    str(tmp_path / 'docs'), mnist_dir=None)
  kinds = [kind for kind, _ in events]
  assert kinds == ['run', 'run', 'write', 'write', 'draw']
  assert reproduce.clr_flags({'base_lr': 1e-4, 'max_lr': 0.1})[-1] in events[1][1]
