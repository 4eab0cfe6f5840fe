"""lr_study is a package: ``pip install .`` into a fresh venv, then imported from a directory
outside the checkout, with its version, every module, its license and its dependencies."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sysconfig
import venv

import pytest

import lr_study

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Run in the fresh venv, from outside the checkout.
SHOW = """
import importlib.metadata, json, pathlib, lr_study
package = pathlib.Path(lr_study.__file__).parent
meta = importlib.metadata.metadata('lr_study')
print(json.dumps({
    'version': lr_study.__version__, 'file': lr_study.__file__,
    'modules': sorted(str(p.relative_to(package)) for p in package.rglob('*.py')),
    'metadata_version': meta['Version'], 'license': meta['License-Expression'],
    'license_files': meta.get_all('License-File'),
    'requires': meta.get_all('Requires-Dist')}))
"""


def _run(*args: str, cwd: pathlib.Path) -> str:
  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PIP_FIND_LINKS')}
  result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr
  return result.stdout


@pytest.mark.slow
def test_pip_install_then_import_from_outside_the_checkout(tmp_path):
  # The build works on a copy, so that it leaves no build/ or *.egg-info in the checkout.
  source = tmp_path / 'lr_study_src'
  shutil.copytree(ROOT / 'lr_study', source / 'lr_study',
                  ignore=shutil.ignore_patterns('__pycache__'))
  for name in ('pyproject.toml', 'README.md', 'LICENSE'):
    shutil.copy(ROOT / name, source / name)
  env_dir = tmp_path / 'venv'
  venv.create(env_dir)
  python = str(env_dir / 'bin' / 'python')
  # The venv sees this environment's packages after its own (as --system-site-packages
  # would): its pip installs into the venv, and builds offline with the setuptools of
  # requirements.txt.
  site = pathlib.Path(_run(python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                           '["purelib"])', cwd=tmp_path).strip())
  (site / 'test_environment.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
  _run(python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index',
       '--quiet', str(source), cwd=tmp_path)

  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  shown = json.loads(_run(python, '-c', SHOW, cwd=elsewhere))
  assert shown['version'] == shown['metadata_version'] == lr_study.__version__
  assert pathlib.Path(shown['file']).is_relative_to(site)
  package = ROOT / 'lr_study'
  checkout = sorted(str(p.relative_to(package)) for p in package.rglob('*.py'))
  assert shown['modules'] == checkout
  assert shown['license'] == 'Apache-2.0' and shown['license_files'] == ['LICENSE']
  requires = shown['requires']
  assert any(r.startswith('jax>=') for r in requires)
  # TensorFlow and TFDS come only with the extra.
  assert all('extra == "tfds"' in r for r in requires if r.startswith('tensorflow'))
  assert {r.split('>=')[0] for r in requires if 'extra == "tfds"' in r} == {
      'tensorflow', 'tensorflow-datasets'}
