"""The README and the docs/ pages: their Python examples run as doctests, their links
resolve, the files, modules and make targets they name exist, and the README stays short."""

from __future__ import annotations

import doctest
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')
PAGES = [README] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))
README_MAX_LINES = 220

_FENCE = re.compile(r'^```.*?^```[ \t]*$', re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r'`[^`\n]*`')
_LINK = re.compile(r'!?\[[^\]\n]*\]\(([^)\s]+)\)')
_HEADING = re.compile(r'^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$', re.MULTILINE)


def _read(path: str) -> str:
  with open(path, encoding='utf-8') as f:
    return f.read()


def _name(path: str) -> str:
  return os.path.relpath(path, ROOT)


def _prose(text: str) -> str:
  """The text outside fenced code blocks."""
  return _FENCE.sub('', text)


def _anchors(path: str) -> set[str]:
  """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped
  (letters, digits, '_' and '-' kept), spaces as '-', a repeated one suffixed -1, -2, ..."""
  anchors, seen = set(), {}
  for heading in _HEADING.findall(_prose(_read(path))):
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading).replace('`', '').lower()
    slug = re.sub(r'[^\w\- ]', '', text).replace(' ', '-')
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    anchors.add(slug if count == 0 else f'{slug}-{count}')
  return anchors


def _links(path: str) -> list[str]:
  """The link and image targets of a page, outside code."""
  return _LINK.findall(_CODE_SPAN.sub('', _prose(_read(path))))


def test_the_readme_is_short():
  with open(README, encoding='utf-8') as f:
    lines = sum(1 for _ in f)
  assert lines <= README_MAX_LINES, f'README.md has {lines} lines, more than {README_MAX_LINES}'


def test_the_readme_links_to_every_docs_page():
  linked = {os.path.normpath(os.path.join(ROOT, link.split('#')[0])) for link in _links(README)}
  missing = [_name(page) for page in PAGES[1:] if page not in linked]
  assert not missing, f'README.md links to none of {missing}'


@pytest.mark.parametrize('page', PAGES, ids=_name)
def test_every_relative_link_resolves_to_a_file_and_heading(page):
  broken = []
  for link in _links(page):
    if re.match(r'[a-z][a-z0-9+.-]*:', link):  # https:, mailto:, ...
      continue
    target, _, anchor = link.partition('#')
    path = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
    if not os.path.exists(path):
      broken.append(f'{link} (no file {_name(path)})')
    elif anchor and path.endswith('.md') and anchor not in _anchors(path):
      broken.append(f'{link} (no heading #{anchor} in {_name(path)})')
  assert not broken, f'{_name(page)}: broken links: {broken}'


@pytest.mark.parametrize('page', PAGES, ids=_name)
def test_named_files_modules_and_make_targets_exist(page):
  text = _read(page)
  missing = []
  for path in set(re.findall(
      r'`((?:lr_study|analysis|benchmarks|experiments|notebooks|tests)/[\w/.]*\w)`', text)):
    if not os.path.exists(os.path.join(ROOT, path)) and not glob.glob(os.path.join(ROOT, path) + '*'):
      missing.append(path)
  for module in set(re.findall(r'python -m ((?:lr_study|analysis|benchmarks)[\w.]*)', text)):
    base = os.path.join(ROOT, *module.split('.'))
    if not (os.path.isfile(base + '.py') or os.path.isfile(os.path.join(base, '__main__.py'))):
      missing.append(f'python -m {module}')
  targets = set(re.findall(r'^([\w-]+):', _read(os.path.join(ROOT, 'Makefile')), re.MULTILINE))
  missing += [f'make {t}' for t in set(re.findall(r'`make ([\w-]+)', text)) - targets]
  assert not missing, f'{_name(page)} names what does not exist: {sorted(missing)}'


def test_the_examples_run_as_doctests():
  attempted = {}
  for page in PAGES:
    result = doctest.testfile(page, module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f'{_name(page)}: {result.failed} example(s) failed'
    attempted[_name(page)] = result.attempted
  # docs/schedules.md: lr_study's schedules in your own optax loop.
  assert attempted[os.path.join('docs', 'schedules.md')] > 0
