"""What the benchmarks record of the machine they ran on, and how they write results."""

from __future__ import annotations

import os
import re
import shlex
import statistics
from typing import Any, Sequence

import jax

from lr_study.runtime import run_files
from lr_study.runtime.metadata import git_commit, package_versions

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


def cpu(cpuinfo: str = '/proc/cpuinfo', xla_flags: str | None = None) -> dict[str, Any]:
  """The CPU's model, the highest XLA ISA level its flags support, the
  ``--xla_cpu_max_isa`` of ``XLA_FLAGS`` if set, and the level XLA compiles for."""
  model, flags = _cpuinfo(cpuinfo)
  supported = None
  for isa, needs in ISA_FLAGS.items():
    if not needs <= flags:
      break
    supported = isa
  xla_flags = os.environ.get('XLA_FLAGS', '') if xla_flags is None else xla_flags
  cap = re.findall(r'--xla_cpu_max_isa=(\S+)', xla_flags)
  capped = cap[-1].upper() if cap else None
  levels = list(ISA_FLAGS)
  compiled = supported
  if supported and capped in ISA_FLAGS:
    compiled = levels[min(levels.index(supported), levels.index(capped))]
  return {'model': model, 'isa': supported, 'xla_cpu_max_isa': capped, 'compiled_isa': compiled}


def machine() -> dict[str, Any]:
  """The devices, host CPU, XLA flags, packages and commit of this process."""
  device = jax.local_devices()[0]
  return {'device_platform': device.platform, 'device_kind': device.device_kind,
          'device_count': jax.local_device_count(), 'host_cpus': os.cpu_count(),
          'cpu': cpu(), 'xla_flags': os.environ.get('XLA_FLAGS', ''),
          'jax_version': jax.__version__, 'packages': package_versions(), 'git': git_commit()}


def machine_line(r: dict[str, Any]) -> str:
  """One Markdown sentence naming the devices, the CPU and the ISA XLA compiled for."""
  c = r['cpu']
  isa = c['compiled_isa'] or 'an unknown ISA'
  if c['xla_cpu_max_isa']:
    isa += f' (`--xla_cpu_max_isa={c["xla_cpu_max_isa"]}`; the CPU has {c["isa"]})'
  return (f'{r["device_count"]} × {r["device_kind"]} ({r["device_platform"]}) on '
          f'{r["host_cpus"]} host CPUs, {c["model"] or "CPU model unknown"}, XLA compiling '
          f'for {isa}; jax {r["jax_version"]}.')


def summary(values: Sequence[float]) -> dict[str, Any]:
  """Median, mean, min, max and the values themselves."""
  return {'median': statistics.median(values), 'mean': statistics.fmean(values),
          'min': min(values), 'max': max(values), 'values': list(values)}


def load_sample(label: str) -> dict[str, Any]:
  """The host's load averages now, labelled."""
  return {'at': label, 'load_average': list(os.getloadavg())}


def command(module: str, argv: Sequence[str]) -> str:
  """``python -m module argv``, after ``XLA_FLAGS=...`` when it is set."""
  xla_flags = os.environ.get('XLA_FLAGS', '')
  return ' '.join([f'XLA_FLAGS={shlex.quote(xla_flags)}'] * bool(xla_flags)
                  + [f'python -m {module}', *argv])


def write(out_dir: str, name: str, results: dict[str, Any], text: str) -> None:
  """``name.json`` (strict JSON) and ``name.md`` in ``out_dir``."""
  os.makedirs(out_dir, exist_ok=True)
  run_files.write_json(os.path.join(out_dir, f'{name}.json'), results)
  with open(os.path.join(out_dir, f'{name}.md'), 'w') as f:
    f.write(text)
