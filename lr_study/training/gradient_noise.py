r"""The gradient noise scale B_simple of the data loss, measured at fixed parameters.

McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training" (2018):
the batch size past which a larger batch stops paying off is about

    B_simple = tr(Σ) / |G|²,

where, for the N training examples with per-example gradients g_i of the **data loss**
(the softmax cross-entropy; the optimizer's weight decay is not part of it),
G = (1/N)·Σ g_i is the full-batch gradient and Σ = (1/N)·Σ (g_i − G)(g_i − G)ᵀ their
covariance (divisor N). The gradient G_b of the mean loss over b distinct examples
drawn uniformly without replacement, as the training loop draws its batches, has

    E|G_b|² = |G|² + κ(b)·tr(Σ),      κ(b) = (N − b) / (b·(N − 1))

(κ(b) → 1/b for N → ∞, McCandlish et al.'s Appendix A.1; κ(N) = 0). So the squared norms
|G_small|² and |G_big|² of gradients over b_small < b_big such examples give unbiased
estimates of both quantities:

    tr(Σ) = (|G_small|² − |G_big|²) / (κ(b_small) − κ(b_big)),
    |G|²  = |G_big|² − κ(b_big)·tr(Σ).

**The measurement** (:func:`measure_fn`), at an evaluation: the first n = C·b examples of
a fresh random order of the training split are cut into C chunks of b, and each chunk's
gradient g_j is taken at the current parameters in evaluation mode (running batch-norm
statistics, no dropout, no augmentation, so that the loss is a sum over examples). Then
|G_small|² = (1/C)·Σ|g_j|² with b_small = b, and |G_big|² = |(1/C)·Σ g_j|² with
b_big = n. By default n is the whole split rounded down to whole chunks on every device,
where κ(n) ≈ 0: |G|² is then the full-batch value, and tr(Σ) rests on C chunk gradients.
The order is the next epoch's (``in_memory.epoch_permutation`` of ``(seed, epoch)``),
which the parameters have not yet seen, so the chunks are independent of them.

Every logged value is thus a function of the parameters at that evaluation alone: no
moving average reaches back over training. On several processes each chunk comes from
one process's slice of the split; the estimate treats the chunks as drawn from the
whole split (exact for one process).

Example: N = 100, |G|² = 1 and tr(Σ) = 10 give at b = 10 and n = 50 the expected squared
norms 1 + 10·κ(10) = 2 and 1 + 10·κ(50) ≈ 1.10, from which both are recovered:

>>> small = 1 + 10 * finite_population(10, 100)
>>> big = 1 + 10 * finite_population(50, 100)
>>> [round(float(x), 4) for x in unbiased_estimates(small, big, 10, 50, 100)]
[1.0, 10.0]
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lr_study.data import streaming
from lr_study.data.feeds import Feed
from lr_study.data.in_memory import DeviceData, normalize, take_micro_batches
from lr_study.errors import ConfigError
from lr_study.runtime import devices
from lr_study.runtime.devices import AXIS
from lr_study.training.step import TrainState, cross_entropy_and_accuracy, sq_norm

Scalar = Any  # a Python number or a scalar array

METRICS = ('gradient_noise_scale', 'grad_norm_sq', 'trace_sigma')


def finite_population(b: Scalar, n: Scalar) -> Any:
  """κ(b) = (N − b) / (b·(N − 1)): the factor of tr(Σ) in E|G_b|² − |G|² for b of
  ``n`` = N examples drawn without replacement (module docstring)."""
  return (n - b) / (b * (n - 1.0))


def unbiased_estimates(small_sq_norm: Scalar, big_sq_norm: Scalar, b_small: Scalar,
                       b_big: Scalar, num_examples: Scalar) -> tuple[Any, Any]:
  """``(|G|², tr(Σ))`` from |G_small|² over ``b_small`` and |G_big|² over ``b_big``
  examples of ``num_examples`` (module docstring); float64 on the host."""
  small, big = np.float64(small_sq_norm), np.float64(big_sq_norm)
  k_small = finite_population(np.float64(b_small), np.float64(num_examples))
  k_big = finite_population(np.float64(b_big), np.float64(num_examples))
  trace = (small - big) / (k_small - k_big)
  return big - k_big * trace, trace


def b_simple(g_sq: float, trace: float) -> float:
  """B_simple = tr(Σ)/|G|²; +inf while the estimated |G|² is not positive (the gradient
  is not resolved from its noise)."""
  return trace / g_sq if g_sq > 0 else float('inf')


def num_chunks(num_local: int, chunk: int, examples: int, local_devices: int,
               processes: int = 1) -> int:
  """C, the chunks of one measurement over all processes: the most whole chunks of
  ``chunk`` examples that every local device of every process can take from its
  process's ``num_local`` examples, at most ``examples`` in all (0: no limit).

  Raises:
    ConfigError: fewer than 2 chunks.
  """
  per_device = num_local // (chunk * local_devices)
  if examples:
    per_device = min(per_device, examples // (chunk * local_devices * processes))
  total = per_device * local_devices * processes
  if total < 2:
    raise ConfigError(f'gradient_noise_batch_size={chunk} leaves {total} chunk(s) of the '
                      f'{num_local * processes} training examples on {local_devices * processes}'
                      ' device(s), need at least 2')
  return total


def _chunk_gradient(model: nn.Module, params: Any, batch_stats: Any, x: jax.Array,
                    y: jax.Array) -> Any:
  """The gradient of the mean cross-entropy over one chunk, in evaluation mode."""
  def loss(p):
    logits = model.apply({'params': p, 'batch_stats': batch_stats}, x, train=False)
    return jnp.mean(cross_entropy_and_accuracy(logits.astype(jnp.float32), y)[0])
  return jax.grad(loss)(params)


@functools.cache
def measure_fn(model: nn.Module, chunk: int, chunks_per_device: int
               ) -> Callable[[Any, Any, DeviceData], tuple[jax.Array, jax.Array]]:
  """The pmapped measurement over a device-resident training split.

  ``fn(params, batch_stats, split)`` with ``split.perm`` the measurement's order: device
  ``d`` scans its ``chunks_per_device`` chunks (``in_memory.take_micro_batches`` at
  positions ``j·D·chunk``, so the C chunks are ``perm[:C·chunk]`` cut in order) and the
  sums are added over all devices. Returns ``(|G_big|², |G_small|²)``, replicated.
  """

  def fn(params: Any, batch_stats: Any, split: DeviceData) -> tuple[jax.Array, jax.Array]:
    local = jax.local_device_count()

    def one(carry, j):
      x, y = take_micro_batches(split, j * local * chunk * jax.process_count(), chunk, 1,
                                local, augment=False, seed=0, epoch=0)
      g = _chunk_gradient(model, params, batch_stats, x[0], y[0])
      return jax.tree.map(jnp.add, carry, (g, sq_norm(g))), None

    zeros = (jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32))
    sums, _ = jax.lax.scan(one, zeros, jnp.arange(chunks_per_device))
    (grad_sum, sq_sum), count = jax.lax.psum((sums, jnp.float32(chunks_per_device)), AXIS)
    return sq_norm(jax.tree.map(lambda g: g / count, grad_sum)), sq_sum / count

  return jax.pmap(fn, axis_name=AXIS)


@functools.cache
def stream_measure_fn(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]
                      ) -> tuple[Callable[..., Any], Callable[..., tuple[jax.Array, jax.Array]]]:
  """The pmapped measurement over streamed batches of one chunk per device.

  ``add(sums, params, batch_stats, batch)`` folds one batch of
  ``streaming.epoch_batches`` (a chunk on each device) into the per-device sums
  ``(Σ g_j, Σ |g_j|², chunks)``; ``total(sums)`` adds them over the devices and returns
  ``(|G_big|², |G_small|²)``, replicated.
  """
  def add(sums, params, batch_stats, batch):
    x = normalize(batch['image'], jnp.asarray(mean), jnp.asarray(std))
    g = _chunk_gradient(model, params, batch_stats, x,
                        batch['label'])
    return jax.tree.map(jnp.add, sums, (g, sq_norm(g), jnp.ones((), jnp.float32)))

  def total(sums):
    grad_sum, sq_sum, count = jax.lax.psum(sums, AXIS)
    return sq_norm(jax.tree.map(lambda g: g / count, grad_sum)), sq_sum / count

  return jax.pmap(add, axis_name=AXIS), jax.pmap(total, axis_name=AXIS)


def metrics(big_sq_norm: float, small_sq_norm: float, chunk: int, chunks: int,
            num_examples: int) -> dict[str, float]:
  """The logged ``gradient_noise_scale`` (B_simple), ``grad_norm_sq`` (|G|²) and
  ``trace_sigma`` (tr(Σ)) of one measurement of ``chunks`` chunks of ``chunk`` examples
  out of ``num_examples``."""
  g_sq, trace = unbiased_estimates(small_sq_norm, big_sq_norm, chunk, chunks * chunk,
                                   num_examples)
  return dict(zip(METRICS, (b_simple(g_sq, trace), float(g_sq), float(trace))))


Meter = Callable[[TrainState, int, int], dict[str, float]]


def meter(feed: Feed, model: nn.Module, chunk: int, examples: int) -> Meter:
  """``measure(state, seed, epoch)``: the :func:`metrics` of one measurement at the
  parameters of ``state``, over chunks of ``chunk`` examples in the order of epoch
  ``epoch`` (the next one to train), at most ``examples`` in all (0: the whole split).
  The model computes in float32 here whatever its ``dtype`` (``config.compute_dtype``)."""
  model = model.clone(dtype=jnp.float32)
  processes, local = jax.process_count(), jax.local_device_count()
  num_local = feed.num_local_train if not feed.streaming else feed.spec.num_train_examples // processes
  chunks = num_chunks(num_local, chunk, examples, local, processes)
  num_examples = num_local * processes
  if not feed.streaming:
    fn = measure_fn(model, chunk, chunks // (local * processes))

    def measure(state: TrainState, seed: int, epoch: int) -> dict[str, float]:
      big, small = fn(state.params, state.batch_stats, feed.ordered(seed, epoch))
      return metrics(float(big[0]), float(small[0]), chunk, chunks, num_examples)
    return measure

  add, total = stream_measure_fn(model, tuple(np.ravel(feed.spec.mean)), tuple(np.ravel(feed.spec.std)))

  def measure_streamed(state: TrainState, seed: int, epoch: int) -> dict[str, float]:
    sums = devices.replicate((jax.tree.map(np.zeros_like, devices.unreplicate(state.params)),
                              np.float32(0), np.float32(0)))
    batches = streaming.epoch_batches(feed.dataset_cfg, 'train', seed, epoch,
                                      chunk * local * processes, local)
    for _, batch in zip(range(chunks // (local * processes)), batches):
      sums = add(sums, state.params, state.batch_stats, batch)
    big, small = total(sums)
    return metrics(float(big[0]), float(small[0]), chunk, chunks, num_examples)
  return measure_streamed
