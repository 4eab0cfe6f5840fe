"""The README's Python examples run as doctests (``Use lr_study's schedules in your own loop``)."""

from __future__ import annotations

import doctest
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_examples_pass():
  result = doctest.testfile(os.path.join(ROOT, 'README.md'), module_relative=False,
                            optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted > 0 and result.failed == 0
