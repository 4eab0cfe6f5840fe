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

**The measurement** (:func:`measure_fn`), at an evaluation: n examples of a fresh random
order of the training split are cut into chunks of b, and each chunk's gradient g_j is
taken at the current parameters in evaluation mode (running batch-norm statistics, no
dropout, no augmentation, so that the loss is a sum over examples). Over C chunks of a
set of examples, |G_small|² = (1/C)·Σ|g_j|² with b_small = b, and |G_big|² =
|(1/C)·Σ g_j|² with b_big = C·b. The order is the next epoch's
(``in_memory.epoch_permutation`` of ``(seed, epoch)``), which the parameters have not
yet seen, so the chunks are independent of them.

* **The whole split** (``gradient_noise_examples = 0``, or streamed data): n is all N
  examples rounded down to whole chunks on every device, so κ(n) ≈ 0 and |G|² is the
  full-batch value; a pass costs about an epoch's compute.
* **Part of it, in two strata** (0 < n < N, the split in memory): late in training a few
  examples carry almost all of the noise (on MNIST at B_simple > N, the 2% of highest
  loss hold 99% of Σ|g_i|²), which a uniform subset misses. So it takes **all** n_H = n/2
  examples of highest loss at their last update (``TrainState.example_loss``) and
  n_E = n/2 drawn without replacement from the N_E = N − n_H others. The hard stratum's chunks give G_H exactly and tr(Σ_H) (population
  n_H); the easy stratum's give unbiased |G_E|² and tr(Σ_E) (population N_E); with Ḡ_E
  the easy sample's mean (unbiased for G_E), per-stratum covariances with divisor N_h,

      |G|²  = (n_H²·|G_H|² + 2·n_H·N_E·G_H·Ḡ_E + N_E²·|G_E|²) / N²,
      tr(Σ) = (n_H·(tr Σ_H + |G_H|²) + N_E·(tr Σ_E + |G_E|²)) / N − |G|²,

  unbiased whatever picked the strata (:func:`stratified_estimates`), which set only the
  variance: 8,192 of MNIST's 54,000 kept B_simple within 1% from epoch 15 on (B_simple
  near and above N), where 8,192 drawn uniformly were off by up to 2.6×.

No moving average reaches back over training. On several processes each chunk (and
stratum) comes from one process's slice of the split; the estimate treats the chunks as
drawn from the whole split (exact for one process).

Example: N = 100, |G|² = 1 and tr(Σ) = 10 give at b = 10 and n = 50 the expected squared
norms 1 + 10·κ(10) = 2 and 1 + 10·κ(50) ≈ 1.10, from which both are recovered:

>>> small, big = (1 + 10 * finite_population(b, 100) for b in (10, 50))
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


def stratified_estimates(num_examples: int, chunk: int, easy: tuple[Scalar, Scalar, int],
                         hard: tuple[Scalar, Scalar, int] = (0.0, 0.0, 0), cross: Scalar = 0.0
                         ) -> tuple[Any, Any]:
  """``(|G|², tr(Σ))`` of ``num_examples`` = N examples from chunks of ``chunk`` examples
  in two strata (module docstring): ``hard`` = (|G_small|², |G_big|², n_H) over all n_H
  examples of the hard stratum, ``easy`` = (|G_small|², |G_big|², n_E) over n_E drawn from
  the N − n_H others, and ``cross`` = G_H·Ḡ_E; float64 on the host. Without a hard
  stratum, the estimates of a uniform sample (:func:`unbiased_estimates`).

  N = 100 in chunks of 10, all 20 hard (|G_H|² = 4, tr Σ_H = 40) and 40 of 80 others
  (|G_E|² = 1, tr Σ_E = 2), G_H·G_E = 1: |G|² = (20²·4 + 2·20·80 + 80²)/100², tr(Σ) =
  (20·44 + 80·3)/100 − |G|²:

  >>> k = finite_population
  >>> hard, easy = (4 + 40 * k(10, 20), 4.0, 20), (1 + 2 * k(10, 80), 1 + 2 * k(40, 80), 40)
  >>> [round(float(x), 4) for x in stratified_estimates(100, 10, easy, hard, cross=1.0)]
  [1.12, 10.08]
  """
  (easy_small, easy_big, n_easy), (hard_small, hard_big, n_hard) = easy, hard
  pop_easy = num_examples - n_hard
  easy_g_sq, easy_trace = unbiased_estimates(easy_small, easy_big, chunk, n_easy, pop_easy)
  hard_g_sq, hard_trace = (unbiased_estimates(hard_small, hard_big, chunk, n_hard, n_hard)
                           if n_hard else (0.0, 0.0))
  n = np.float64(num_examples)
  g_sq = (n_hard**2 * hard_g_sq + 2.0 * n_hard * pop_easy * np.float64(cross)
          + pop_easy**2 * easy_g_sq) / n**2
  mean_sq_norm = (n_hard * (hard_trace + hard_g_sq) + pop_easy * (easy_trace + easy_g_sq)) / n
  return g_sq, mean_sq_norm - g_sq


def b_simple(g_sq: float, trace: float) -> float:
  """B_simple = tr(Σ)/|G|²; +inf while the estimated |G|² is not positive (the gradient
  is not resolved from its noise)."""
  return trace / g_sq if g_sq > 0 else float('inf')


def is_stratified(streaming: bool, examples: int, num_examples: int) -> bool:
  """Whether a measurement of ``examples`` of ``num_examples`` takes two strata: part of a
  split in memory (streamed batches carry no example's identity to keep a loss by)."""
  return not streaming and 0 < examples < num_examples


def memory_size(feed: Feed, chunk: int, examples: int) -> int:
  """The length of ``TrainState.example_loss`` the measurement needs: N where it takes
  strata, else 0 (the step then keeps no losses)."""
  n = feed.num_local_train * jax.process_count() if not feed.streaming else 0
  return n if chunk and is_stratified(feed.streaming, examples, n) else 0


def num_chunks(num_local: int, chunk: int, examples: int, local_devices: int,
               processes: int = 1, streaming: bool = False) -> tuple[int, int]:
  """``(C_H, C_E)``, the hard and easy chunks of one measurement over all processes: the
  most whole chunks of ``chunk`` examples that every device of every process can take
  from its process's ``num_local`` examples, at most ``examples`` in all (0: no limit),
  half of each device's hard where the measurement takes strata (:func:`is_stratified`).

  Raises:
    ConfigError: fewer than 2 chunks in a stratum measured.
  """
  per_device = num_local // (chunk * local_devices)
  if examples:
    per_device = min(per_device, examples // (chunk * local_devices * processes))
  devices = local_devices * processes
  stratified = is_stratified(streaming, examples, num_local * processes)
  hard = per_device // 2 * devices if stratified else 0
  easy = per_device * devices - hard
  if easy < 2 or stratified and hard < 2:
    raise ConfigError(f'gradient_noise_batch_size={chunk} leaves {easy + hard} chunk(s) of the '
                      f'{num_local * processes} training examples on {devices} device(s), need '
                      + ('2 in each half, hard and easy' if stratified else 'at least 2'))
  return hard, easy


def _chunk_gradient(model: nn.Module, params: Any, batch_stats: Any, x: jax.Array,
                    y: jax.Array) -> Any:
  """The gradient of the mean cross-entropy over one chunk, in evaluation mode."""
  def loss(p):
    logits = model.apply({'params': p, 'batch_stats': batch_stats}, x, train=False)
    return jnp.mean(cross_entropy_and_accuracy(logits.astype(jnp.float32), y)[0])
  return jax.grad(loss)(params)


@functools.cache
def measure_fn(model: nn.Module, chunk: int, hard_per_device: int, easy_per_device: int
               ) -> Callable[[Any, Any, DeviceData, jax.Array], tuple[jax.Array, ...]]:
  """The pmapped measurement over a device-resident training split.

  ``fn(params, batch_stats, split, example_loss)`` with ``split.perm`` the measurement's
  order: the process's ``hard_per_device·D·chunk`` examples of highest ``example_loss``
  (``TrainState.example_loss``, by index in the whole split) move to its front, keeping
  their order. Device ``d`` scans its ``hard_per_device`` chunks of the front, then its
  ``easy_per_device`` of the rest (``in_memory.take_micro_batches`` at ``j·D·chunk``: the
  order cut in turn), summed over all devices. Returns the easy and the hard stratum's
  ``(|G_small|², |G_big|²)`` and ``G_H·Ḡ_E``, replicated (zeros for no hard stratum).
  """

  def fn(params: Any, batch_stats: Any, split: DeviceData, example_loss: jax.Array
         ) -> tuple[jax.Array, ...]:
    local = jax.local_device_count()

    def sums(data: DeviceData, chunks: int) -> tuple[Any, jax.Array, jax.Array]:
      """(Σ g_j, Σ |g_j|², chunks) of ``chunks`` chunks per device, over every device."""
      def one(carry, j):
        x, y = take_micro_batches(data, j * local * chunk * jax.process_count(), chunk, 1,
                                  local, augment=False, seed=0, epoch=0)
        g = _chunk_gradient(model, params, batch_stats, x[0], y[0])
        return jax.tree.map(jnp.add, carry, (g, sq_norm(g))), None

      zeros = (jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32))
      local_sums, _ = jax.lax.scan(one, zeros, jnp.arange(chunks))
      return jax.lax.psum((*local_sums, jnp.float32(chunks)), AXIS)

    num_hard = hard_per_device * local * chunk
    order = split.perm
    if num_hard:
      losses = jax.lax.dynamic_slice_in_dim(example_loss, split.first_index, len(order))
      hard = jnp.zeros(len(order), bool).at[jax.lax.top_k(losses, num_hard)[1]].set(True)
      order = order[jnp.argsort(~hard[order], stable=True)]
    easy_sum, easy_sq, easy_count = sums(split.replace(perm=order[num_hard:]), easy_per_device)
    easy_mean = jax.tree.map(lambda g: g / easy_count, easy_sum)
    easy = (easy_sq / easy_count, sq_norm(easy_mean))
    if not num_hard:
      return *easy, jnp.zeros(()), jnp.zeros(()), jnp.zeros(())
    hard_sum, hard_sq, hard_count = sums(split.replace(perm=order), hard_per_device)
    hard_mean = jax.tree.map(lambda g: g / hard_count, hard_sum)
    cross = sum(jnp.vdot(h, e) for h, e in zip(jax.tree.leaves(hard_mean),
                                                jax.tree.leaves(easy_mean)))
    return *easy, hard_sq / hard_count, sq_norm(hard_mean), cross

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
    g = _chunk_gradient(model, params, batch_stats, x, batch['label'])
    return jax.tree.map(jnp.add, sums, (g, sq_norm(g), jnp.ones((), jnp.float32)))

  def total(sums):
    grad_sum, sq_sum, count = jax.lax.psum(sums, AXIS)
    return sq_norm(jax.tree.map(lambda g: g / count, grad_sum)), sq_sum / count

  return jax.pmap(add, axis_name=AXIS), jax.pmap(total, axis_name=AXIS)


def metrics(num_examples: int, chunk: int, easy: tuple[float, float, int],
            hard: tuple[float, float, int] = (0.0, 0.0, 0), cross: float = 0.0
            ) -> dict[str, float]:
  """The logged ``gradient_noise_scale`` (B_simple), ``grad_norm_sq`` (|G|²) and
  ``trace_sigma`` (tr(Σ)) of one measurement (:func:`stratified_estimates`'s arguments)."""
  g_sq, trace = stratified_estimates(num_examples, chunk, easy, hard, cross)
  return dict(zip(METRICS, (b_simple(g_sq, trace), float(g_sq), float(trace))))


Meter = Callable[[TrainState, int, int], dict[str, float]]


def meter(feed: Feed, model: nn.Module, chunk: int, examples: int) -> Meter:
  """``measure(state, seed, epoch)``: the :func:`metrics` of one measurement at the
  parameters of ``state``, over chunks of ``chunk`` examples in the order of epoch
  ``epoch`` (the next one to train), ``examples`` in all in two strata by
  ``state.example_loss`` (0: the whole split; streamed, a uniform sample). The model
  computes in float32 here whatever its ``dtype`` (``config.compute_dtype``)."""
  model = model.clone(dtype=jnp.float32)
  processes, local = jax.process_count(), jax.local_device_count()
  num_local = feed.num_local_train if not feed.streaming else feed.spec.num_train_examples // processes
  num_examples = num_local * processes
  hard, easy = num_chunks(num_local, chunk, examples, local, processes, feed.streaming)
  if not feed.streaming:
    fn = measure_fn(model, chunk, hard // (local * processes), easy // (local * processes))

    def measure(state: TrainState, seed: int, epoch: int) -> dict[str, float]:
      out = [float(v[0]) for v in fn(state.params, state.batch_stats, feed.ordered(seed, epoch),
                                     state.example_loss)]
      return metrics(num_examples, chunk, (*out[:2], easy * chunk),
                     (*out[2:4], hard * chunk), out[4])
    return measure

  add, total = stream_measure_fn(model, tuple(np.ravel(feed.spec.mean)), tuple(np.ravel(feed.spec.std)))

  def measure_streamed(state: TrainState, seed: int, epoch: int) -> dict[str, float]:
    sums = devices.replicate((jax.tree.map(np.zeros_like, devices.unreplicate(state.params)),
                              np.float32(0), np.float32(0)))
    batches = streaming.epoch_batches(feed.dataset_cfg, 'train', seed, epoch,
                                      chunk * local * processes, local)
    for _, batch in zip(range(easy // (local * processes)), batches):
      sums = add(sums, state.params, state.batch_stats, batch)
    big, small = total(sums)
    return metrics(num_examples, chunk, (float(small[0]), float(big[0]), easy * chunk))
  return measure_streamed
