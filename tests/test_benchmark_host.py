"""What the benchmarks record of the host: the CPU model and the ISA XLA compiles for."""

from __future__ import annotations

import pytest

from benchmarks import host

AVX2_HOST = ('processor\t: 0\nmodel name\t: AMD EPYC 7B13\n'
             'flags\t\t: fpu sse4_2 avx fma avx2 bmi2\n\n'
             'processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx fma avx2\n')
AVX512_HOST = ('model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n'
               'flags\t\t: sse4_2 avx fma avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n')


@pytest.mark.parametrize('cpuinfo, xla_flags, expected', [
    (AVX2_HOST, '', {'model': 'AMD EPYC 7B13', 'isa': 'AVX2', 'xla_cpu_max_isa': None,
                     'compiled_isa': 'AVX2'}),
    (AVX512_HOST, '--xla_force_host_platform_device_count=8 --xla_cpu_max_isa=AVX2',
     {'model': 'Intel(R) Xeon(R) CPU @ 2.20GHz', 'isa': 'AVX512_VNNI',
      'xla_cpu_max_isa': 'AVX2', 'compiled_isa': 'AVX2'}),
    (AVX2_HOST, '--xla_cpu_max_isa=avx512', {'model': 'AMD EPYC 7B13', 'isa': 'AVX2',
                                             'xla_cpu_max_isa': 'AVX512',
                                             'compiled_isa': 'AVX2'}),
    (None, '', {'model': None, 'isa': None, 'xla_cpu_max_isa': None, 'compiled_isa': None}),
])
def test_cpu_names_the_model_and_the_isa_xla_compiles_for(tmp_path, cpuinfo, xla_flags,
                                                          expected):
  path = tmp_path / 'cpuinfo'
  if cpuinfo is not None:
    path.write_text(cpuinfo)
  assert host.cpu(str(path), xla_flags) == expected


def test_the_command_names_xla_flags_quoted_for_a_shell(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_max_isa=AVX2 --xla_force_host_platform_device_count=8')
  assert host.command('benchmarks.throughput', ['--rounds=2']) == (
      "XLA_FLAGS='--xla_cpu_max_isa=AVX2 --xla_force_host_platform_device_count=8' "
      'python -m benchmarks.throughput --rounds=2')
  monkeypatch.delenv('XLA_FLAGS')
  assert host.command('benchmarks.input_pipeline', []) == 'python -m benchmarks.input_pipeline'
