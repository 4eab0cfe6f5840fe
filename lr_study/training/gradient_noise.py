r"""The gradient noise scale B_simple, estimated during training.

McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training" (2018):
the batch size past which a larger batch stops paying off is about

    B_simple = tr(Σ) / |G|²,

where G is the true (full-data) gradient and Σ the covariance of the per-example
gradients. A gradient averaged over B examples drawn independently has
E|G_B|² = |G|² + tr(Σ)/B, so the squared norms of the same step's gradient on a small
batch (B_small examples) and on a big one (B_big examples) give the unbiased estimates of
Appendix A.1:

    |G|²  ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small),
    tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)
          = (|G_small|² − |G_big|²) · B_small·B_big / (B_big − B_small).

|G_small|² may be the mean over several small-batch gradients of the step (the
per-device gradients before the all-reduce, or the micro-batches of one device): its
expectation is unchanged, its variance smaller. Each single estimate is noisy, so
:func:`update` keeps a moving average of each, and :func:`b_simple` takes the ratio of
the two averages (not the average of ratios). Over training both quantities fall by
orders of magnitude, so a plain moving average would be ruled for long by its early,
large estimates; each measurement therefore enters with the weight 1/|G_big|², its
own scale. With decay d per measurement the weighted sums and their total weight w follow

    m ← d·m + (1 − d)·estimate/|G_big|²,   w ← d·w + (1 − d)/|G_big|²,   average m̂ = m / w

(an exponential moving average when |G_big|² holds still); the weight cancels in the
ratio, B_simple = m_tr(Σ) / m_|G|², but not in :func:`estimates`. The memory is about
1/(1 − d) measurements: lr_study's train step measures each of the first M updates, then
every M-th (``gradient_noise_every_updates``, default 32), and the default d = 0.99
remembers about 100 measurements, 3,200 updates, less as the scale falls. A single
estimate from a small batch is very noisy (at B = 8, two halves of 4 examples, |G|² is
resolved only over dozens of them): the first M measurements give the averages a start,
and the long memory keeps |G|² resolved late in training, when the gradient is small
against its noise.

In a ``jax.pmap`` train step over D devices in all (every process's) with global batch
B, each device holding B/D examples, the gradients being those of the mean loss over each
device's examples, before the optimizer (all-reduce over the axis ``AXIS``)::

    small = lax.pmean(sq_norm(local_grads), AXIS)   # B_small = B / D
    grads = lax.pmean(local_grads, AXIS)            # B_big = B
    noise = gradient_noise.update(noise, small, sq_norm(grads), B // D, B, 0.99)

Every device then holds the same state. With D devices and k micro-batches each,
B_small = B/(D·k) from the micro-batches, or B/D from the per-device means; on one
device with k ≥ 2 micro-batches, B_small = B/k, ``small`` the mean of their squared norms
and ``big`` the squared norm of their mean (B_big = B). On one device without
micro-batches the two halves of the batch are the small batches: for a mean loss (no
batch norm, which would normalise each half apart) the batch's gradient g is the mean of
the halves' g₁ and g₂, so the first half's gradient alone gives g₂ = 2g − g₁ and

    small = (|g₁|² + |g₂|²) / 2 = |g|² + |g₁ − g|²,     B_small = B/2,   big = |g|²,   B_big = B

(:func:`two_halves_sq_norm`), whence tr(Σ) ≈ B·|g₁ − g|² and |G|² ≈ |g|² − |g₁ − g|²;
the update's own gradient g is computed as without the measurement. Sampling without
replacement from N examples scales the tr(Σ)/B term by (N − B)/(N − 1), negligible for
B ≪ N.

Example: |G|² = 1 and tr(Σ) = 8 give, at B_small = 2 and B_big = 8, expected squared
norms 1 + 8/2 = 5 and 1 + 8/8 = 2, from which the estimates recover both:

>>> state = update(init(), small_sq_norm=5.0, big_sq_norm=2.0, b_small=2, b_big=8, decay=0.9)
>>> [round(float(x), 4) for x in estimates(state)]
[1.0, 8.0]
>>> round(float(b_simple(state)), 4)
8.0
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp

from lr_study.runtime.devices import AXIS

Scalar = Any  # a Python number or a scalar jax array (float32)


@flax.struct.dataclass
class GradientNoiseState:
  """The moving weighted sums of the |G|² and tr(Σ) estimates (float32 scalars).

  Attributes:
    ema_g_sq: m_|G|², the decayed sum of the |G|² estimates, each times its weight.
    ema_trace: m_tr(Σ), the same for the tr(Σ) estimates.
    weight: w, the decayed sum of the weights (module docstring); 0 before the first
      measurement.
  """

  ema_g_sq: jax.Array
  ema_trace: jax.Array
  weight: jax.Array


def init() -> GradientNoiseState:
  """The state before any estimate: zero averages and zero weight."""
  zero = jnp.zeros((), jnp.float32)
  return GradientNoiseState(ema_g_sq=zero, ema_trace=zero, weight=zero)


def is_measured(update: Any, every: int) -> Any:
  """Whether the update after ``update`` updates is measured: each of the first M
  (``every``), then every M-th. Host ints or traced arrays."""
  return (update < every) | (update % every == 0)


def next_measured(update: int, every: int) -> int:
  """The first measured update after ``update`` updates, on the host
  (:func:`is_measured` of it is true, and of none between)."""
  return update + 1 if update + 1 < every else (update // every + 1) * every


def sq_norm(tree: Any) -> jax.Array:
  """Σ over every leaf of ``tree`` of Σ x², accumulated in float32."""
  leaves = jax.tree_util.tree_leaves(tree)
  return sum((jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in leaves),
             jnp.zeros((), jnp.float32))


def two_halves_sq_norm(first_half: Any, whole: Any) -> jax.Array:
  """|G_small|² of the two halves of a batch, ``|g|² + |g₁ − g|²`` (module docstring),
  from the gradient ``first_half`` (g₁) over its first B/2 examples and ``whole`` (g)
  over all B."""
  return sq_norm(whole) + sq_norm(jax.tree.map(jnp.subtract, first_half, whole))


def unbiased_estimates(small_sq_norm: Scalar, big_sq_norm: Scalar, b_small: Scalar,
                       b_big: Scalar) -> tuple[jax.Array, jax.Array]:
  """One step's unbiased ``(|G|², tr(Σ))`` from |G_small|² and |G_big|² (module docstring).

  Args:
    small_sq_norm: |G_small|², the squared norm of a gradient over ``b_small`` examples
      (or the mean of several such squared norms).
    big_sq_norm: |G_big|², the squared norm of the gradient over ``b_big`` examples.
    b_small: the small batch size.
    b_big: the big batch size, larger than ``b_small``.

  Returns:
    ``(g_sq, trace)``, float32 scalars; either may be negative for a single step.
  """
  small, big, bs, bb = (jnp.asarray(x, jnp.float32)
                        for x in (small_sq_norm, big_sq_norm, b_small, b_big))
  span = bb - bs
  g_sq = (bb * big - bs * small) / span
  trace = (small - big) * bs * bb / span  # no difference of reciprocals
  return g_sq, trace


def update(state: GradientNoiseState, small_sq_norm: Scalar, big_sq_norm: Scalar,
           b_small: Scalar, b_big: Scalar, decay: Scalar) -> GradientNoiseState:
  """Folds one measurement's |G|² and tr(Σ) estimates, weighted by 1/|G_big|², into the
  moving averages.

  Args:
    state: the averages so far.
    small_sq_norm: |G_small|² (see :func:`unbiased_estimates`).
    big_sq_norm: |G_big|².
    b_small: the small batch size.
    b_big: the big batch size.
    decay: d in [0, 1): the weight of the past; ``1/(1 − d)`` measurements is the memory.

  Returns:
    ``m ← d·m + (1 − d)·estimate/|G_big|²`` for both, ``w ← d·w + (1 − d)/|G_big|²``
    (a measurement with |G_big|² = 0 weighs nothing).
  """
  g_sq, trace = unbiased_estimates(small_sq_norm, big_sq_norm, b_small, b_big)
  d = jnp.asarray(decay, jnp.float32)
  big = jnp.asarray(big_sq_norm, jnp.float32)
  weight = jnp.where(big > 0, 1.0 / jnp.where(big > 0, big, 1.0), 0.0)
  mix = lambda old, new: d * old + (1.0 - d) * weight * new
  return GradientNoiseState(ema_g_sq=mix(state.ema_g_sq, g_sq),
                            ema_trace=mix(state.ema_trace, trace),
                            weight=mix(state.weight, jnp.ones((), jnp.float32)))


def measure(state: GradientNoiseState, shape: tuple[int, int], local_grads: Any,
            grads: Any, big_sq_norm: jax.Array, micro_sq_norm: jax.Array,
            first_half: Callable[[], Any], *, batch_norm: bool, decay: float
            ) -> GradientNoiseState:
  """``state`` with one train-step update's measurement folded in (call inside the pmap).

  The small batches (module docstring): each device's B/D examples on several devices,
  each micro-batch's on one device with accumulation (``micro_sq_norm``, the mean of
  their squared norms), else the two halves of the batch, from the first half's gradient
  ``first_half()`` and ``grads`` (NaN with ``batch_norm``, which would see the halves
  apart, or an odd batch). ``shape`` is ``(k, m)``: this device's micro-batches and their
  size; ``local_grads`` this device's gradient, ``grads`` the all-reduced one and
  ``big_sq_norm`` its squared norm. Dropout masks of the first half are the first rows
  of the batch's: JAX's partitionable threefry draws random bits by position.
  """
  num_devices, (k, m) = jax.device_count(), shape
  if num_devices > 1:
    small, b_small = jax.lax.pmean(sq_norm(local_grads), AXIS), k * m
  elif k > 1:
    small, b_small = micro_sq_norm, m
  elif batch_norm or m % 2:
    small, b_small = jnp.full((), jnp.nan), m
  else:
    small, b_small = two_halves_sq_norm(first_half(), grads), m // 2
  return update(state, small, big_sq_norm, b_small, num_devices * k * m, decay)


def estimates(state: GradientNoiseState) -> tuple[jax.Array, jax.Array]:
  """The averages ``(|G|², tr(Σ)) = (m_|G|² / w, m_tr(Σ) / w)``; NaN before any
  measurement."""
  safe = jnp.where(state.weight > 0, state.weight, jnp.nan)
  return state.ema_g_sq / safe, state.ema_trace / safe


def b_simple(state: GradientNoiseState) -> jax.Array:
  """B_simple = m_tr(Σ) / m_|G|², the ratio of the moving averages.

  NaN before any update; +inf while the averaged |G|² is not positive (the gradient's
  signal has not yet been resolved from its noise).
  """
  g_sq, trace = estimates(state)
  unresolved = jnp.where(jnp.isnan(g_sq), jnp.nan, jnp.inf)
  return jnp.where(g_sq > 0, trace / jnp.where(g_sq > 0, g_sq, 1.0), unresolved)
