"""The notebook's install decision (lr_study.colab) in fake environments: Colab's TPU and
GPU runtimes with their own jax, a bare CPU machine, Python 3.11 and 3.13."""

from __future__ import annotations

import os

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from lr_study import colab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The package's dependencies as pyproject.toml states them, with lower bounds (a
# test-only one slipped in, which must never be installed).
DEPENDENCIES = [
    'jax>=0.6', 'flax>=0.10', 'optax>=0.2.4', 'orbax-checkpoint>=0.11', 'numpy>=2.0',
    'tensorflow-cpu>=2.16', 'tensorflow-datasets>=4.9.8', 'tensorboard>=2.16',
    'absl-py>=2.1', 'ml-collections>=1.0', 'matplotlib>=3.9', 'scikit-learn>=1.5',
    'importlib_resources>=6; python_version < "3.12"', 'pytest>=8',
]
COLAB = {  # what a Colab runtime brings (besides jax and its plugin)
    'numpy': '2.0.2', 'ipykernel': '6.17.1', 'tensorflow': '2.19.0', 'tensorboard': '2.19.0',
    'flax': '0.10.6', 'optax': '0.2.5', 'orbax-checkpoint': '0.11.13', 'absl-py': '2.3.0',
    'matplotlib': '3.10.0', 'scikit-learn': '1.6.1', 'tensorflow-datasets': '4.9.9',
    'pip': '24.1.2'}
JAX = {'jax': '0.7.2', 'jaxlib': '0.7.2'}
ENVIRONMENTS = {
    'colab_tpu_py313': colab.Environment('3.13.2', 'tpu', {**COLAB, **JAX, 'libtpu': '0.0.21'}),
    'colab_gpu_py312': colab.Environment('3.12.11', 'gpu', {
        **COLAB, **JAX, 'jax-cuda12-plugin': '0.7.2', 'jax-cuda12-pjrt': '0.7.2'}),
    'tpu_without_libtpu': colab.Environment('3.12.11', 'tpu', {**COLAB, **JAX}),
    'gpu_with_cpu_jax': colab.Environment('3.12.11', 'gpu', {**COLAB, **JAX}),
    'tpu_with_old_jax': colab.Environment('3.11.13', 'tpu', {
        **COLAB, 'jax': '0.4.33', 'jaxlib': '0.4.33', 'libtpu': '0.0.2'}),
    'bare_cpu_py311': colab.Environment('3.11.9', 'cpu', {'pip': '24.0', 'ipykernel': '7.0.1'}),
    'colab_cpu_py313': colab.Environment('3.13.2', 'cpu', {**COLAB, **JAX}),
}


def _plan(name: str, dependencies=tuple(DEPENDENCIES)) -> colab.InstallPlan:
  return colab.install_plan(ENVIRONMENTS[name], dependencies, '>=3.11')


def _check_no_protected_package_replaced_nor_test_package_added(
    env: colab.Environment, plan: colab.InstallPlan, dependencies) -> None:
  bounds = {Requirement(d).name: Requirement(d).specifier for d in dependencies}
  jax_moves = not colab.at_least(env.version('jax'), bounds['jax'])
  for protected in colab.PROTECTED:
    version = env.version(protected)
    bound = colab.lower_bound(bounds.get(protected, SpecifierSet())) or Version('0')
    if version is None or version < bound or (jax_moves and protected in ('jax', 'jaxlib',
                                                                          'libtpu')):
      continue
    assert f'{protected}=={version}' in plan.constraints, protected
    for requirement in plan.requirements:  # a plugin pinned to this very jax moves nothing
      req = Requirement(requirement)
      assert req.name != protected or req.specifier == SpecifierSet(f'=={version}'), requirement
  assert not {Requirement(r).name for r in plan.requirements} & colab.TEST_ONLY


@pytest.mark.parametrize('name', ENVIRONMENTS)
def test_no_satisfying_preinstalled_protected_package_is_replaced_nor_a_test_package_added(name):
  plan = _plan(name)
  _check_no_protected_package_replaced_nor_test_package_added(ENVIRONMENTS[name], plan,
                                                               DEPENDENCIES)
  assert 'pytest>=8 (test-only)' in plan.skipped


def test_colab_tpu_keeps_its_jax_and_libtpu_and_installs_only_what_it_lacks():
  plan = _plan('colab_tpu_py313')
  assert plan.requirements == ('ml-collections>=1.0',)
  assert plan.constraints == ('jax==0.7.2', 'jaxlib==0.7.2', 'libtpu==0.0.21', 'numpy==2.0.2',
                              'ipykernel==6.17.1')
  assert 'tensorflow 2.19.0' in plan.kept  # Colab's TensorFlow is tensorflow-cpu's
  assert 'importlib_resources>=6; python_version < "3.12" (not for Python 3.13.2)' in plan.skipped


def test_colab_gpu_keeps_its_cuda_jax():
  plan = _plan('colab_gpu_py312')
  assert plan.requirements == ('ml-collections>=1.0',)
  assert 'jax==0.7.2' in plan.constraints and 'jax 0.7.2' in plan.kept


@pytest.mark.parametrize('name, build', [('tpu_without_libtpu', 'jax[tpu]==0.7.2'),
                                         ('gpu_with_cpu_jax', 'jax[cuda12]==0.7.2')])
def test_a_missing_plugin_is_the_one_of_the_installed_jax(name, build):
  plan = _plan(name)
  assert plan.requirements == (build, 'ml-collections>=1.0')
  assert 'jax==0.7.2' in plan.constraints and 'jaxlib==0.7.2' in plan.constraints


def test_a_jax_below_the_bound_is_upgraded_with_its_libtpu_from_one_release():
  plan = _plan('tpu_with_old_jax')
  assert plan.requirements[0] == 'jax[tpu]>=0.6'
  assert not any(c.startswith(('jax==', 'jaxlib==', 'libtpu==')) for c in plan.constraints)
  assert 'numpy==2.0.2' in plan.constraints and 'ipykernel==6.17.1' in plan.constraints


def test_a_bare_python_311_gets_every_dependency_but_the_test_only_one():
  plan = _plan('bare_cpu_py311')
  assert plan.requirements == tuple(d.split(';')[0].strip() for d in DEPENDENCIES[:-1])
  assert plan.constraints == ('ipykernel==7.0.1',)


def test_a_cpu_runtime_keeps_its_jax_without_a_plugin():
  plan = _plan('colab_cpu_py313')
  assert plan.requirements == ('ml-collections>=1.0',)


def test_never_a_downgrade_of_a_protected_package_past_an_upper_bound():
  plan = _plan('colab_tpu_py313', ('numpy>=1.26,<2.0', 'ipykernel==6.0', 'jax>=0.6,<0.7'))
  assert plan.requirements == ()
  assert {'numpy==2.0.2', 'ipykernel==6.17.1', 'jax==0.7.2'} <= set(plan.constraints)


def test_an_old_tensorflow_is_upgraded_not_joined_by_tensorflow_cpu():
  env = colab.Environment('3.12.1', 'cpu', {**COLAB, **JAX, 'tensorflow': '2.15.1'})
  plan = colab.install_plan(env, ['tensorflow-cpu>=2.16'])
  assert plan.requirements == ('tensorflow>=2.16',)


def test_a_python_outside_the_package_range_is_refused():
  env = colab.Environment('3.10.12', 'cpu', {})
  with pytest.raises(RuntimeError, match=r"Python 3.10.12 is not the package's >=3.11"):
    colab.install_plan(env, DEPENDENCIES, '>=3.11')


def test_install_runs_pip_on_the_checkout_then_the_plan_under_its_constraints(tmp_path):
  (tmp_path / 'pyproject.toml').write_text(
      '[project]\nname = "lr_study"\nrequires-python = ">=3.11"\n'
      'dependencies = ["jax>=0.6", "ml-collections>=1.0", "pytest>=8"]\n')
  calls = []

  def run(command, check):
    assert check
    constraint = next((command[i + 1] for i, a in enumerate(command) if a == '-c'), None)
    calls.append((command[3:], open(constraint).read() if constraint else None))

  plan = colab.install(str(tmp_path), ENVIRONMENTS['colab_tpu_py313'], run=run)
  assert plan.requirements == ('ml-collections>=1.0',)
  assert calls[0] == (['install', '-q', '--no-deps', '-e', str(tmp_path)], None)
  assert calls[1][0][-1] == 'ml-collections>=1.0'
  assert calls[1][1] == ('jax==0.7.2\njaxlib==0.7.2\nlibtpu==0.0.21\nnumpy==2.0.2\n'
                         'ipykernel==6.17.1\n')


def test_a_checkout_without_pyproject_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match='has no pyproject.toml'):
    colab.read_dependencies(str(tmp_path))


@pytest.mark.parametrize('extras', [(), ('tfds',)])
def test_the_packages_own_dependencies_in_every_environment(extras):
  dependencies, requires_python = colab.read_dependencies(ROOT, extras)
  assert not {Requirement(d).name.lower() for d in dependencies} & colab.TEST_ONLY
  for name, env in ENVIRONMENTS.items():
    plan = colab.install_plan(env, dependencies, requires_python)
    _check_no_protected_package_replaced_nor_test_package_added(env, plan, dependencies)
    if name.startswith('colab_'):  # Colab's own TensorFlow and TFDS meet the tfds extra
      assert not any(r.startswith('tensorflow') for r in plan.requirements), plan.requirements


def test_an_unknown_extra_is_named():
  with pytest.raises(ValueError, match='no_such_extra: not an extra of'):
    colab.read_dependencies(ROOT, ['no_such_extra'])


@pytest.mark.parametrize('environ, files, smi, expected', [
    ({'TPU_ACCELERATOR_TYPE': 'v5litepod-1'}, [], None, 'tpu'),
    ({}, ['/dev/vfio/0'], None, 'tpu'),
    ({'COLAB_GPU': '1'}, [], None, 'gpu'),
    ({}, [], '/usr/bin/nvidia-smi', 'gpu'),
    ({}, [], None, 'cpu'),
])
def test_the_runtime_is_detected_from_its_environment_and_devices(environ, files, smi, expected):
  find = lambda pattern: [f for f in files if f.startswith(pattern.split('[')[0])]
  assert colab.detect_accelerator(environ, find, lambda _: smi) == expected


def test_a_tpu_or_gpu_runtime_running_on_the_cpu_is_refused_unless_allowed():
  for accelerator in ('tpu', 'gpu'):
    with pytest.raises(RuntimeError, match='ALLOW_CPU = True'):
      colab.check_backend(accelerator, 'cpu', allow_cpu=False)
    colab.check_backend(accelerator, 'cpu', allow_cpu=True)
    colab.check_backend(accelerator, accelerator, allow_cpu=False)
  colab.check_backend('cpu', 'cpu', allow_cpu=False)


def test_a_changed_distribution_that_is_imported_asks_for_a_restart():
  before, after = {'numpy': '2.0.2', 'absl-py': '2.1.0'}, {'numpy': '2.0.2', 'absl-py': '2.3.0'}
  assert colab.changed_imports(before, after, ['absl', 'numpy']) == ['absl-py']
  assert colab.changed_imports(before, after, ['numpy']) == []
