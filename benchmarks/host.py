"""What the benchmarks record of the machine they ran on, and how they write results."""

from __future__ import annotations

import os
import shlex
import statistics
from typing import Any, Sequence

import jax

from lr_study.runtime import run_files
from lr_study.runtime.environment import (  # noqa: F401  (cpu and ISA_FLAGS: this module's API)
    ISA_FLAGS, cpu, git_commit, package_versions)


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
