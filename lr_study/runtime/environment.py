"""The environment a result came from: the CPU and the instruction set XLA compiled for,
the backend and its devices, the package versions and the code.

XLA:CPU compiles for the host's instruction set (ISA), capped by ``--xla_cpu_max_isa`` in
``XLA_FLAGS``: the same run is bit-identical on machines with the same ISA and jaxlib,
while another ISA changes its floating-point sums from the first update on (README,
Results). A run's ``metadata.json`` records :func:`environment`; the benchmarks
(``benchmarks.host``) and the published results (``analysis.results``) record it too.

This module imports jax only inside :func:`devices`.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
from typing import Any

# The distributions whose versions a result records, as pip names them.
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'tensorflow-cpu',
            'tensorflow', 'tensorflow-datasets', 'ml-collections', 'absl-py')

# XLA:CPU's --xla_cpu_max_isa levels, lowest first, and the /proc/cpuinfo flags of each.
ISA_FLAGS = {
    'SSE4_2': {'sse4_2'},
    'AVX': {'avx'},
    'AVX2': {'avx2', 'fma'},
    'AVX512': {'avx512f', 'avx512bw', 'avx512dq', 'avx512vl'},
    'AVX512_VNNI': {'avx512_vnni'},
    'AVX512_BF16': {'avx512_bf16'},
    'AMX': {'amx_bf16', 'amx_int8'},
    'AMX_FP16': {'amx_fp16'},
}
CPUINFO = '/proc/cpuinfo'


def _cpuinfo(path: str) -> tuple[str | None, set[str]]:
  """The first processor's model name and flags in ``path`` (None, empty: not there)."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return None, set()
  field = lambda name: re.search(rf'^{name}\s*:\s*(.*)$', text, re.MULTILINE)
  model, flags = field('model name'), field('flags')
  return (model.group(1).strip() if model else None,
          set(flags.group(1).split()) if flags else set())


def xla_flags() -> str:
  return os.environ.get('XLA_FLAGS', '')


def cpu(cpuinfo: str = CPUINFO, flags: str | None = None) -> dict[str, Any]:
  """The CPU's model, the highest XLA ISA level its flags support (``isa``), the
  ``--xla_cpu_max_isa`` of ``flags`` (default ``XLA_FLAGS``) if set, and the level XLA
  compiles for (``compiled_isa``: the lower of the two). None where unknown (no
  /proc/cpuinfo: not Linux, or not x86)."""
  model, cpu_flags = _cpuinfo(cpuinfo)
  supported = None
  for isa, needs in ISA_FLAGS.items():
    if not needs <= cpu_flags:
      break
    supported = isa
  cap = re.findall(r'--xla_cpu_max_isa=(\S+)', xla_flags() if flags is None else flags)
  capped = cap[-1].upper() if cap else None
  levels = list(ISA_FLAGS)
  compiled = supported
  if supported and capped in ISA_FLAGS:
    compiled = levels[min(levels.index(supported), levels.index(capped))]
  return {'model': model, 'isa': supported, 'xla_cpu_max_isa': capped, 'compiled_isa': compiled}


def package_versions() -> dict[str, str]:
  """The installed version of each of :data:`PACKAGES` (those not installed left out)."""
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
  return versions


def git_commit(root: str | None = None) -> dict[str, Any]:
  """The commit of the code that ran, and whether tracked files had uncommitted changes
  (None, None outside a git checkout)."""
  root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

  def git(*args: str) -> str:
    return subprocess.run(['git', '-C', root, *args], capture_output=True, text=True,
                          timeout=10).stdout.strip()

  try:
    commit = git('rev-parse', 'HEAD') or None
    return {'commit': commit,
            'dirty': bool(git('status', '--porcelain', '--untracked-files=no')) if commit else None}
  except (OSError, subprocess.SubprocessError):
    return {'commit': None, 'dirty': None}


def devices() -> dict[str, Any]:
  """The backend (``platform``), its device kinds and counts."""
  import jax  # pylint: disable=g-import-not-at-top
  return {'platform': jax.default_backend(), 'local_device_count': jax.local_device_count(),
          'device_count': jax.device_count(), 'process_count': jax.process_count(),
          'kinds': sorted({d.device_kind for d in jax.local_devices()})}


def environment(with_devices: bool = True) -> dict[str, Any]:
  """Everything above: ``devices`` (unless ``with_devices`` is False: then jax is not
  touched), ``cpu``, ``host_cpus``, ``xla_flags``, ``packages``, ``git``."""
  return {**({'devices': devices()} if with_devices else {}), 'cpu': cpu(),
          'host_cpus': os.cpu_count(), 'xla_flags': xla_flags(),
          'packages': package_versions(), 'git': git_commit()}


def describe(env: dict[str, Any]) -> str:
  """One line naming the environment of :func:`environment` (or a run's metadata), e.g.
  ``cpu (1 × cpu device), AMD EPYC, XLA compiling for AVX2; jaxlib 0.10.2; commit
  05380d4``."""
  dev = env.get('devices') or {}
  c = env.get('cpu') or {}
  isa = c.get('compiled_isa') or 'an unknown instruction set'
  if c.get('xla_cpu_max_isa'):
    isa += f' (--xla_cpu_max_isa={c["xla_cpu_max_isa"]}; the CPU has {c.get("isa")})'
  kinds = ', '.join(dev.get('kinds') or ()) or '?'
  count = dev.get('local_device_count', '?')
  cores = env.get('host_cpus')
  packages = env.get('packages') or {}
  git = env.get('git') or {}
  commit = (git.get('commit') or 'unknown')[:7] + (' (with uncommitted changes)'
                                                   if git.get('dirty') else '')
  return (f'{dev.get("platform", "?")} ({count} × {kinds}), '
          + (f'{cores} host CPU cores, ' if cores else '')
          + f'{c.get("model") or "CPU model unknown"}, XLA compiling for {isa}; '
          f'jax {packages.get("jax", "?")}, jaxlib {packages.get("jaxlib", "?")}; '
          f'commit {commit}')
