"""A pmapped step compiled with XLA:CPU options of its own.

``jax.pmap`` takes no compiler options, so in one CPU process :func:`wrap` compiles the
pmapped function for the arguments of its first call (``lower(...).compile(...)``) with
:data:`OPTIONS`; on other backends, or over several processes (where a compiled pmap
cannot convert host-local arrays), the function is returned as it is.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

# XLA:CPU copies every weight that an update both reads in its backward pass and
# overwrites, once per update, unless copy insertion analyses the loop's regions: the
# copies cost about 2% of an update at B = 64. The results are bit-identical.
OPTIONS = {'xla_cpu_copy_insertion_use_region_analysis': True}


class CpuCompiled:
  """``pmapped`` compiled with :data:`OPTIONS` on its first call; later calls must have
  the same shapes (``compiled`` then holds the executable, ``lower`` is ``pmapped``'s)."""

  def __init__(self, pmapped: Callable[..., Any]):
    self.lower = pmapped.lower
    self.compiled: Any = None

  def __call__(self, *args: Any) -> Any:
    if self.compiled is None:
      self.compiled = self.lower(*args).compile(compiler_options=OPTIONS)
    return self.compiled(*args)


def wrap(pmapped: Callable[..., Any]) -> Callable[..., Any]:
  """:class:`CpuCompiled` of ``pmapped`` in one CPU process, else ``pmapped`` itself."""
  if jax.default_backend() == 'cpu' and jax.process_count() == 1:
    return CpuCompiled(pmapped)
  return pmapped
