"""lr_study.runtime.environment: what a run's metadata.json records of where it ran (the
CPU and the ISA XLA compiled for, the backend and device kind, the package versions, the
git commit and whether the tree was dirty)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from lr_study import config as schema
from lr_study.plan import build_plan
from lr_study.runtime import environment, metadata

AVX2_HOST = ('processor\t: 0\nmodel name\t: AMD EPYC 7B13\n'
             'flags\t\t: fpu sse4_2 avx fma avx2 bmi2\n\n'
             'processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx fma avx2\n')


@pytest.mark.parametrize('xla_flags, compiled', [
    ('', 'AVX2'),
    ('--xla_force_host_platform_device_count=8 --xla_cpu_max_isa=AVX', 'AVX'),
    ('--xla_cpu_max_isa=sse4_2', 'SSE4_2'),
    ('--xla_cpu_max_isa=AVX512', 'AVX2'),  # a cap above the CPU's own changes nothing
])
def test_the_isa_xla_compiles_for_is_the_cpus_capped_by_xla_flags(tmp_path, monkeypatch,
                                                                  xla_flags, compiled):
  path = tmp_path / 'cpuinfo'
  path.write_text(AVX2_HOST)
  monkeypatch.setenv('XLA_FLAGS', xla_flags)
  cpu = environment.cpu(str(path))
  assert cpu['model'] == 'AMD EPYC 7B13' and cpu['isa'] == 'AVX2'
  assert cpu['compiled_isa'] == compiled


def test_a_machine_without_cpuinfo_records_unknowns(tmp_path):
  assert environment.cpu(str(tmp_path / 'none'), '') == {
      'model': None, 'isa': None, 'xla_cpu_max_isa': None, 'compiled_isa': None}


def test_the_versions_of_jax_jaxlib_and_the_libraries_are_recorded():
  versions = environment.package_versions()
  for name in ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy'):
    assert versions[name][0].isdigit(), name


def _git(root, *args):
  subprocess.run(['git', '-C', str(root), *args], check=True, capture_output=True,
                 env={**os.environ, 'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@t',
                      'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@t'})


def test_the_commit_and_a_dirty_tree_are_recorded(tmp_path):
  _git(tmp_path, 'init', '-q')
  (tmp_path / 'a.py').write_text('x = 1\n')
  _git(tmp_path, 'add', 'a.py')
  _git(tmp_path, 'commit', '-qm', 'a')
  head = subprocess.run(['git', '-C', str(tmp_path), 'rev-parse', 'HEAD'], capture_output=True,
                        text=True, check=True).stdout.strip()
  assert environment.git_commit(str(tmp_path)) == {'commit': head, 'dirty': False}
  (tmp_path / 'untracked.py').write_text('')  # untracked files leave the tree clean
  assert environment.git_commit(str(tmp_path))['dirty'] is False
  (tmp_path / 'a.py').write_text('x = 2\n')
  assert environment.git_commit(str(tmp_path)) == {'commit': head, 'dirty': True}
  assert environment.git_commit(str(tmp_path / 'no_repo_here')) == {'commit': None,
                                                                    'dirty': None}


def test_run_metadata_holds_the_environment_as_strict_json(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_max_isa=AVX')
  config = schema.get_config()
  config.variant = 'test'
  config.num_epochs = 2
  config.lr_schedule = dict(name='constant', init_value=0.1)
  config.batch_schedule = dict(name='constant', batch_size=100)
  recorded = metadata.run_metadata(config, build_plan(config, 1, 1000), 0, {})
  json.dumps(recorded, allow_nan=False)
  assert recorded['devices']['platform'] == 'cpu' and recorded['devices']['kinds'] == ['cpu']
  cpu = recorded['cpu']
  assert set(cpu) == {'model', 'isa', 'xla_cpu_max_isa', 'compiled_isa'}
  assert cpu['xla_cpu_max_isa'] == 'AVX' and '--xla_cpu_max_isa=AVX' in recorded['xla_flags']
  if cpu['isa'] is not None:  # an x86 Linux host
    assert cpu['compiled_isa'] in environment.ISA_FLAGS
  for name in ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy'):
    assert name in recorded['packages']
  assert set(recorded['git']) == {'commit', 'dirty'}
  assert recorded['git']['commit'] is None or len(recorded['git']['commit']) == 40
  again = metadata.resumed(recorded, config, build_plan(config, 1, 1000), 10)
  assert again['resumes'][0]['cpu'] == cpu and again['cpu'] == cpu


def test_describe_names_backend_cpu_isa_jaxlib_and_commit():
  env = {'devices': {'platform': 'cpu', 'local_device_count': 1, 'kinds': ['cpu']},
         'cpu': {'model': 'AMD EPYC 7B13', 'isa': 'AVX512', 'xla_cpu_max_isa': 'AVX2',
                 'compiled_isa': 'AVX2'},
         'host_cpus': 2, 'packages': {'jax': '0.10.2', 'jaxlib': '0.10.2'},
         'git': {'commit': '05380d4' + '0' * 33, 'dirty': True}}
  assert environment.describe(env) == (
      'cpu (1 × cpu), 2 host CPU cores, AMD EPYC 7B13, XLA compiling for AVX2 '
      '(--xla_cpu_max_isa=AVX2; the CPU has AVX512); jax 0.10.2, jaxlib 0.10.2; '
      'commit 05380d4 (with uncommitted changes)')


def test_the_benchmarks_read_the_cpu_from_the_library():
  from benchmarks import host  # pylint: disable=g-import-not-at-top
  assert host.cpu is environment.cpu and host.ISA_FLAGS is environment.ISA_FLAGS
