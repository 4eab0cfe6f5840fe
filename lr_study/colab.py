"""What the Colab notebook installs, and the runtime it refuses: plain functions.

A Colab runtime comes with its own jax (with libtpu on a TPU runtime, the CUDA plugin on
a GPU one), numpy, ipykernel and TensorFlow, built to work together. :func:`install_plan`
decides, from the package's dependencies (``pyproject.toml``) and an :class:`Environment`
(Python version, the runtime's accelerator, the installed distributions), what pip
installs:

* the package itself, without its dependencies (``pip install --no-deps -e CHECKOUT``);
* each dependency whose environment marker holds and that no installed distribution
  satisfies (``tensorflow`` counts as ``tensorflow-cpu``): its requirement as written;
* never a test-only package (:data:`TEST_ONLY`), even where a dependency names one;
* jax: a preinstalled jax at or above the package's lower bound stays, with its jaxlib
  and libtpu; a TPU runtime without libtpu gets ``jax[tpu]==<that jax>``, a GPU one
  without the CUDA plugin ``jax[cuda12]==<that jax>`` (the matching builds, jax itself
  unmoved); a missing or older jax is installed as ``jax[tpu]``, ``jax[cuda12]`` or
  ``jax`` with the package's bound, so jax and libtpu come from one release;
* every :data:`PROTECTED` distribution that is installed and at or above the package's
  lower bound (whatever its upper bound) is kept by a pip constraint ``name==version``,
  so that no other requirement moves it: pip stops with a conflict instead.

:func:`check_backend` refuses a TPU or GPU runtime whose jax runs on the CPU, unless
asked to run there. This module imports neither jax nor the rest of lr_study: it runs
before they are installed.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from typing import Callable, Mapping, Sequence

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ACCELERATORS = ('tpu', 'gpu', 'cpu')
TEST_ONLY = frozenset({'pytest', 'nbclient', 'nbformat', 'ipykernel', 'papermill'})
PROTECTED = ('jax', 'jaxlib', 'libtpu', 'numpy', 'ipykernel')
JAX_PLUGINS = {'tpu': ('jax[tpu]', 'libtpu'), 'gpu': ('jax[cuda12]', 'jax-cuda12-plugin')}
# Distributions that meet a requirement of another: Colab's TensorFlow is the full build.
PROVIDES = {'tensorflow': ('tensorflow-cpu',), 'tensorflow-cpu': ('tensorflow',)}


@dataclasses.dataclass(frozen=True)
class Environment:
  """What pip would install into: ``python`` ('3.13.2'), ``accelerator`` (the runtime's
  hardware: 'tpu', 'gpu' or 'cpu') and ``installed`` (distribution → version)."""

  python: str
  accelerator: str
  installed: Mapping[str, str]

  def __post_init__(self) -> None:
    object.__setattr__(self, 'installed', {canonicalize_name(name): version
                                           for name, version in self.installed.items()})

  def provider(self, name: str) -> str | None:
    """The installed distribution that meets a requirement of ``name``: itself, or one
    that :data:`PROVIDES` it."""
    return next((d for d in (name, *PROVIDES.get(name, ())) if d in self.installed), None)

  def version(self, name: str) -> Version | None:
    provider = self.provider(name)
    return Version(self.installed[provider]) if provider else None


@dataclasses.dataclass(frozen=True)
class InstallPlan:
  """``requirements`` for pip, under ``constraints`` (``name==version``); ``kept``: the
  preinstalled distributions that meet their requirement; ``skipped``: the requirements
  left out, each with why."""

  requirements: tuple[str, ...]
  constraints: tuple[str, ...]
  kept: tuple[str, ...]
  skipped: tuple[str, ...]

  def describe(self) -> str:
    return '\n'.join([f'pip install: {" ".join(self.requirements) or "nothing"}',
                      f'kept as installed: {", ".join(self.kept) or "nothing"}',
                      f'held by pip constraints: {", ".join(self.constraints) or "nothing"}',
                      f'skipped: {", ".join(self.skipped) or "nothing"}'])


def lower_bound(specifier: SpecifierSet) -> Version | None:
  """The least version ``specifier`` names with ``>=``, ``>``, ``==`` or ``~=``."""
  bounds = [Version(s.version.replace('.*', '')) for s in specifier
            if s.operator in ('>=', '>', '==', '~=')]
  return max(bounds, default=None)


def at_least(installed: Version | None, specifier: SpecifierSet) -> bool:
  """``installed`` exists and is at or above ``specifier``'s :func:`lower_bound`."""
  bound = lower_bound(specifier)
  return installed is not None and (bound is None or installed >= bound)


def install_plan(env: Environment, dependencies: Sequence[str],
                 requires_python: str = '') -> InstallPlan:
  """What to pip install for ``dependencies`` (PEP 508 strings) in ``env`` (module
  docstring).

  Raises:
    RuntimeError: ``env.python`` outside ``requires_python``, or an unknown accelerator.
  """
  if env.accelerator not in ACCELERATORS:
    raise RuntimeError(f'accelerator must be one of {", ".join(ACCELERATORS)}, '
                       f'got {env.accelerator!r}')
  if requires_python and Version(env.python) not in SpecifierSet(requires_python):
    raise RuntimeError(f'Python {env.python} is not the package\'s {requires_python}')
  marker_env = {'python_version': '.'.join(env.python.split('.')[:2]),
                'python_full_version': env.python}
  wanted, kept, skipped = [], [], []
  bounds: dict[str, SpecifierSet] = {}
  moving: set[str] = set()
  for text in dependencies:
    req = Requirement(text)
    name, installed = canonicalize_name(req.name), env.version(canonicalize_name(req.name))
    if req.marker is not None and not req.marker.evaluate(marker_env):
      skipped.append(f'{text} (not for Python {env.python})')
    elif name in TEST_ONLY:
      skipped.append(f'{text} (test-only)')
    elif name == 'jax':
      bounds[name] = req.specifier
      jax, moving = _jax(env, req.specifier)
      wanted.extend(jax)
      kept.extend([] if moving else [f'jax {installed}'])
    elif name in PROTECTED and at_least(installed, req.specifier):
      bounds[name] = req.specifier
      kept.append(f'{name} {installed}')
    elif installed is not None and req.specifier.contains(installed, prereleases=True):
      kept.append(f'{env.provider(name)} {installed}')
    else:  # a provider that is too old is upgraded, not joined by a second distribution
      wanted.append(f'{env.provider(name) or req.name}{req.specifier}')
  constraints = tuple(f'{name}=={env.version(name)}' for name in PROTECTED
                      if name not in moving and at_least(env.version(name),
                                                           bounds.get(name, SpecifierSet())))
  return InstallPlan(tuple(wanted), constraints, tuple(kept), tuple(skipped))


def _jax(env: Environment, specifier: SpecifierSet) -> tuple[list[str], set[str]]:
  """The jax requirements for ``env``'s accelerator, and the protected distributions they
  move: none; the plugin of the installed jax (``jax[tpu]==0.7.2``); or jax with its
  plugin at the package's bound, moving jax, jaxlib and libtpu together."""
  build, plugin = JAX_PLUGINS.get(env.accelerator, ('jax', None))
  jax = env.version('jax')
  if not at_least(jax, specifier):
    return [f'{build}{specifier}'], {'jax', 'jaxlib', 'libtpu'}
  if plugin is None or env.version(plugin) is not None:
    return [], set()
  return [f'{build}=={jax}'], set()


def read_dependencies(checkout: str, extras: Sequence[str] = ()) -> tuple[list[str], str]:
  """``[project] dependencies`` of ``checkout/pyproject.toml``, with those of each of its
  ``extras`` (``optional-dependencies``), and ``requires-python``."""
  path = os.path.join(checkout, 'pyproject.toml')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{checkout} has no pyproject.toml: pip cannot install it')
  with open(path, 'rb') as f:
    project = tomllib.load(f).get('project', {})
  optional = project.get('optional-dependencies', {})
  unknown = [extra for extra in extras if extra not in optional]
  if unknown:
    raise ValueError(f'{", ".join(unknown)}: not an extra of {path} (known: {", ".join(optional)})')
  dependencies = list(project.get('dependencies', []))
  return dependencies + [d for extra in extras for d in optional[extra]], project.get(
      'requires-python', '')


def detect_accelerator(environ: Mapping[str, str] = os.environ,
                       find: Callable[[str], list[str]] = glob.glob,
                       which: Callable[[str], str | None] = shutil.which) -> str:
  """The runtime's accelerator from its environment and device files: 'tpu' (a TPU VM's
  ``TPU_ACCELERATOR_TYPE``, the old ``COLAB_TPU_ADDR``, or ``/dev/accel*``,
  ``/dev/vfio/<n>``), 'gpu' (``COLAB_GPU``, ``nvidia-smi`` or ``/dev/nvidia0``), else 'cpu'."""
  if (environ.get('TPU_ACCELERATOR_TYPE') or environ.get('COLAB_TPU_ADDR')
      or find('/dev/accel[0-9]*') or find('/dev/vfio/[0-9]*')):
    return 'tpu'
  if environ.get('COLAB_GPU') or which('nvidia-smi') or find('/dev/nvidia0'):
    return 'gpu'
  return 'cpu'


def current_environment(accelerator: str = 'auto') -> Environment:
  """This interpreter's :class:`Environment`; ``accelerator`` 'auto' is detected."""
  installed = {dist.metadata['Name']: dist.version for dist in importlib.metadata.distributions()
               if dist.metadata['Name']}
  return Environment('.'.join(map(str, sys.version_info[:3])),
                     detect_accelerator() if accelerator == 'auto' else accelerator, installed)


def install(checkout: str, env: Environment, extras: Sequence[str] = (),
            run: Callable[..., object] = subprocess.run) -> InstallPlan:
  """Installs ``checkout`` (editable, no dependencies) and :func:`install_plan`'s
  requirements for its dependencies and ``extras`` under its constraints, with pip;
  returns the plan."""
  plan = install_plan(env, *read_dependencies(checkout, extras))
  print(plan.describe())
  pip = [sys.executable, '-m', 'pip', 'install', '-q']
  run([*pip, '--no-deps', '-e', checkout], check=True)
  if plan.requirements:
    with tempfile.TemporaryDirectory() as folder:
      constraints = os.path.join(folder, 'constraints.txt')
      with open(constraints, 'w') as f:
        f.write(''.join(f'{line}\n' for line in plan.constraints))
      run([*pip, '-c', constraints, *plan.requirements], check=True)
  return plan


def changed_imports(before: Mapping[str, str], after: Mapping[str, str],
                    imported: Sequence[str]) -> list[str]:
  """The distributions whose version changed from ``before`` to ``after`` (name →
  version) and that provide one of the ``imported`` top-level modules: the session must
  restart to use them."""
  owners = importlib.metadata.packages_distributions()
  dists = {canonicalize_name(d) for module in imported for d in owners.get(module, ())}
  old, new = (Environment('0', 'cpu', versions).installed for versions in (before, after))
  return sorted(name for name in dists if old.get(name) != new.get(name))


def check_backend(accelerator: str, backend: str, allow_cpu: bool) -> None:
  """Refuses (RuntimeError, one line) a TPU or GPU runtime whose jax runs on the CPU,
  unless ``allow_cpu``."""
  if accelerator in ('tpu', 'gpu') and backend == 'cpu' and not allow_cpu:
    raise RuntimeError(
        f'this is a {accelerator.upper()} runtime, but jax runs on the CPU: if the install '
        'cell just changed jax, restart the session (Runtime > Restart session) and run all '
        'again; set ALLOW_CPU = True to run the study on the CPU anyway')
