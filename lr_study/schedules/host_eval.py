"""A schedule's values on the host, in float64 by NumPy, from its jaxpr: no XLA compile.

The plan evaluates every schedule on the host, at Python floats and NumPy arrays, where
float32 would round (``base.clock_fn``). Run op by op by XLA, each distinct operation
and shape would be one compile (18 for the default study's schedules). Instead the
schedule is traced to a jaxpr with 64-bit jax (tracing compiles nothing) and its
equations are evaluated with NumPy, each result in its equation's dtype. A schedule
with an operation outside :data:`NUMPY_OPS` is run op by op by XLA on the CPU, as
before.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np


def _elementwise(f: Callable[..., Any]) -> Callable[..., Any]:
  return lambda *args, **params: f(*args)


def _broadcast_in_dim(x: Any, *, shape: tuple[int, ...],
                      broadcast_dimensions: tuple[int, ...], **params: Any) -> np.ndarray:
  x = np.asarray(x)
  kept = dict(zip(broadcast_dimensions, x.shape))
  return np.broadcast_to(x.reshape([kept.get(d, 1) for d in range(len(shape))]), shape)


NUMPY_OPS: dict[str, Callable[..., Any]] = {
    **{name: _elementwise(f) for name, f in {
        'abs': np.abs, 'add': np.add, 'ceil': np.ceil, 'cos': np.cos, 'div': np.true_divide,
        'eq': np.equal, 'exp': np.exp, 'floor': np.floor, 'ge': np.greater_equal,
        'gt': np.greater, 'le': np.less_equal, 'log': np.log, 'lt': np.less,
        'max': np.maximum, 'min': np.minimum, 'mul': np.multiply, 'ne': np.not_equal,
        'neg': np.negative, 'pow': np.power, 'sign': np.sign, 'sin': np.sin,
        'sqrt': np.sqrt, 'sub': np.subtract}.items()},
    'broadcast_in_dim': _broadcast_in_dim,
    'convert_element_type': lambda x, *, new_dtype, **params: np.asarray(x, new_dtype),
    'integer_pow': lambda x, *, y: np.power(x, y),
    'select_n': lambda which, *cases: np.choose(np.asarray(which, np.int32), cases),
}
_CALLS = ('jit', 'pjit')  # a nested jaxpr in params['jaxpr']


def _supported(jaxpr: jex.Jaxpr) -> bool:
  """Every equation's operation is in NUMPY_OPS (nested calls included), on floats:
  NumPy's division of integers would not truncate as XLA's does."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in _CALLS:
      if not _supported(eqn.params['jaxpr'].jaxpr):
        return False
    elif eqn.primitive.name not in NUMPY_OPS or (
        eqn.primitive.name == 'div' and not jnp.issubdtype(eqn.outvars[0].aval.dtype,
                                                           jnp.inexact)):
      return False
  return True


def _evaluate(closed: jex.ClosedJaxpr, args: list[Any]) -> list[np.ndarray]:
  jaxpr = closed.jaxpr
  env: dict[Any, Any] = dict(zip(jaxpr.constvars, map(np.asarray, closed.consts)))
  env.update(zip(jaxpr.invars, args))

  def read(var: Any) -> Any:
    return var.val if isinstance(var, jex.Literal) else env[var]

  for eqn in jaxpr.eqns:
    inputs = [read(v) for v in eqn.invars]
    if eqn.primitive.name in _CALLS:
      outputs = _evaluate(eqn.params['jaxpr'], inputs)
    else:
      outputs = [NUMPY_OPS[eqn.primitive.name](*inputs, **eqn.params)]
    for var, value in zip(eqn.outvars, outputs):
      env[var] = np.asarray(value, var.aval.dtype)
  return [np.asarray(read(v)) for v in jaxpr.outvars]


def evaluate(schedule: Callable[[Any], Any], count: Any) -> np.ndarray:
  """``schedule(count)`` for a float64 NumPy ``count``, as a NumPy array."""
  with jax.enable_x64(True):
    closed = jax.make_jaxpr(schedule)(count)
    if _supported(closed.jaxpr):
      return _evaluate(closed, [count])[0]
    with jax.default_device(jax.local_devices(backend='cpu')[0]):
      return np.asarray(schedule(jnp.asarray(count)))
