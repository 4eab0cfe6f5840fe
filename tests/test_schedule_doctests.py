"""The docstring examples of the schedule modules and of the noise-scale estimator, run
with ``doctest``."""

from __future__ import annotations

import doctest
import types

import pytest

from lr_study.schedules import (batch_ramp, cyclical, decay, optax_style, registered_schedules,
                                wrappers)
from lr_study.training import gradient_noise

MODULES = (decay, wrappers, cyclical, optax_style, batch_ramp, gradient_noise)
BUILDER_MODULES = (decay, wrappers, cyclical)


def _run_doctests(module: types.ModuleType) -> tuple[doctest.DocTestRunner, str]:
  """Runs every example of ``module``; the runner (failures, tries) and its report."""
  runner = doctest.DocTestRunner(optionflags=doctest.REPORT_NDIFF)
  report: list[str] = []
  for test in doctest.DocTestFinder().find(module):
    runner.run(test, out=report.append)
  return runner, ''.join(report)


@pytest.mark.parametrize('module', MODULES, ids=lambda m: m.__name__.rsplit('.', 1)[-1])
def test_module_doctests_pass(module):
  runner, report = _run_doctests(module)
  assert runner.tries > 0, f'{module.__name__} has no doctest examples'
  assert runner.failures == 0, report


def test_every_registered_builder_of_these_modules_has_a_doctest():
  builders = {name: getattr(module, name) for module in BUILDER_MODULES
              for name in registered_schedules()
              if getattr(getattr(module, name, None), '__module__', None) == module.__name__}
  assert len(builders) == 15, sorted(builders)
  assert [name for name, f in builders.items() if '>>> ' not in (f.__doc__ or '')] == []
