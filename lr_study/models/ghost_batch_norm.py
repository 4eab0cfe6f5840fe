"""Ghost batch normalisation: batch statistics over fixed-size slices of the batch.

Hoffer, Hubara & Soudry, "Train longer, generalize better: closing the generalization
gap in large batch training of neural networks" (NeurIPS 2017), §4.1; used by Smith,
Kindermans, Ying & Le (ICLR 2018) with ghost batches of 128 so that the noise batch
norm adds does not change when the batch size grows.

In training, the **global micro-batch** (one forward pass: ``M`` examples on ``D``
devices of ``m`` each) is split into ``K`` ghost batches of ``g`` consecutive examples,
whatever the device layout (``lr_study.batching.ghost_layout`` states the sizes and
checks them), and ghost batch ``k`` is normalised with its own statistics over its
examples and every non-feature axis, in two passes (the mean first, then the centred
squares):

    μ_k = mean(x_k),   σ²_k = mean((x_k − μ_k)²)   (biased, as in Ioffe & Szegedy 2015)
    y = γ · (x − μ_k) / √(σ²_k + ε) + β

so the outputs, the running averages and the gradients are those of one device holding
the whole global micro-batch. When ``g`` divides ``m`` every ghost lies on one device
and nothing is communicated; otherwise (a ghost spans devices) each device sums its
examples into their ghosts and the sums of all ``K`` ghosts are added across devices
with ``lax.psum`` over ``axis_name``. ``ghost_batch_size`` at least ``M`` is the whole
global micro-batch (batch norm synchronised over the devices); ``ghost_batch_size`` 0
is ordinary batch norm over the ``m`` examples the module sees (one device's
micro-batch, never reduced across devices).

The running averages (collection ``'batch_stats'``, names ``mean`` and ``var`` as in
``flax.linen.BatchNorm``) move towards the mean of the statistics of the ghosts the
module sees, ``S``:

    mean ← ρ · mean + (1 − ρ) · (1/|S|) Σ_{k∈S} μ_k
    var  ← ρ · var  + (1 − ρ) · (1/|S|) Σ_{k∈S} σ²_k

with ``ρ = momentum`` (0.9 by default, PyTorch's ``momentum=0.1``). ``S`` is the
device's own ``m / g`` ghosts when every ghost is local, and all ``K`` ghosts of the
global micro-batch when ghosts span devices (every device has their statistics after
the reduction). Either way each device's ``S`` has the same size, so the train step's
``lax.pmean`` of ``batch_stats`` over the devices gives the mean over all ghosts of the
global micro-batch, each ghost weighted equally: the same running averages on 1, 2, 4
or 8 devices. They are left alone while the module is initialising, as in
``flax.linen.BatchNorm``. In evaluation the running averages replace ``μ_k`` and
``σ²_k`` and nothing is communicated.

Outside a ``jax.pmap`` (or ``shard_map``) that binds ``axis_name`` — ``model.init``
on the host, say — or with ``axis_name`` ``None``, the module is on one device.

Under mixed precision (a bfloat16 ``x``) the statistics, the normalisation and the
running averages are float32; only the output is cast back to ``x``'s dtype.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lr_study.batching import GhostLayout, ghost_layout, position_in_batch


def _bound_axis_size(axis_name: str | None) -> int:
  """The size of ``axis_name`` where a pmap binds it; 1 without an axis or outside."""
  if axis_name is None:
    return 1
  try:
    return jax.lax.axis_size(axis_name)
  except NameError:  # not inside a pmap or shard_map over axis_name
    return 1


class GhostBatchNorm(nn.Module):
  """Batch norm over ghost batches of ``ghost_batch_size`` consecutive examples of the
  global micro-batch (features last).

  Attributes:
    ghost_batch_size: examples per ghost batch; 0 for the examples the module sees.
    momentum: decay ``ρ`` of the running averages (``flax.linen.BatchNorm`` convention).
    epsilon: ``ε`` added to the variance.
    axis_name: the pmap axis over which the global micro-batch is spread
      (``lr_study.runtime.devices.AXIS``); ``None`` for one device.
    param_dtype: of ``scale`` and ``bias``.
  """

  ghost_batch_size: int = 0
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
    """``x`` normalised, in ``x``'s dtype; statistics and running averages in float32."""
    dtype, x = x.dtype, x.astype(jnp.float32)
    features = (x.shape[-1],)
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, features, jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, features, jnp.float32)
    scale = self.param('scale', nn.initializers.ones, features, self.param_dtype)
    bias = self.param('bias', nn.initializers.zeros, features, self.param_dtype)

    if use_running_average:
      centred, var = x - ra_mean.value, ra_var.value
    else:
      devices = _bound_axis_size(self.axis_name)
      layout = ghost_layout(devices * x.shape[0], devices, self.ghost_batch_size)
      if layout.local:
        centred, var = self._local_ghosts(x, layout.ghost_size)
      else:
        centred, var = self._spanning_ghosts(x, layout)
    y = centred * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
    return y.reshape(x.shape).astype(dtype)

  def _update_running_averages(self, means: jax.Array, variances: jax.Array) -> None:
    """Moves the running averages towards the mean of ``[ghosts, C]`` statistics."""
    if self.is_initializing():
      return
    rho = self.momentum
    for name, stats in (('mean', means), ('var', variances)):
      average = self.get_variable('batch_stats', name)
      self.put_variable('batch_stats', name, rho * average + (1 - rho) * stats.mean(0))

  def _local_ghosts(self, x: jax.Array, g: int) -> tuple[jax.Array, jax.Array]:
    """``x − μ`` shaped ``[m/g, g, ..., C]`` and ``σ²`` ``[m/g, 1, ..., C]`` of this
    device's own ghosts; no communication."""
    ghosts = x.reshape((x.shape[0] // g, g) + x.shape[1:])
    axes = tuple(range(1, ghosts.ndim - 1))
    mean = ghosts.mean(axes, keepdims=True)
    centred = ghosts - mean
    var = jnp.square(centred).mean(axes, keepdims=True)
    self._update_running_averages(mean.reshape(-1, x.shape[-1]), var.reshape(-1, x.shape[-1]))
    return centred, var

  def _spanning_ghosts(self, x: jax.Array, layout: GhostLayout) -> tuple[jax.Array, jax.Array]:
    """``x − μ`` and ``σ²`` of each example's ghost (``[m, 1, ..., C]``), from the per-ghost
    sums ``[K, C]`` of every device added with ``lax.psum``."""
    m, num_ghosts = x.shape[0], layout.num_ghosts
    axes = tuple(range(1, x.ndim - 1))
    count = layout.ghost_size * (x.size // (m * x.shape[-1]))
    position = position_in_batch(0, jax.lax.axis_index(self.axis_name), jnp.arange(m), m,
                                 layout.num_devices)
    ghost = position // layout.ghost_size

    def ghost_means(values: jax.Array) -> jax.Array:  # [m, ..., C] -> [K, C], all devices
      sums = jax.ops.segment_sum(values.sum(axes), ghost, num_ghosts)
      return jax.lax.psum(sums, self.axis_name) / count

    def of_each_example(stats: jax.Array) -> jax.Array:  # [K, C] -> [m, 1, ..., C]
      return stats[ghost].reshape((m,) + (1,) * len(axes) + x.shape[-1:])

    mean = ghost_means(x)
    centred = x - of_each_example(mean)
    var = ghost_means(jnp.square(centred))
    self._update_running_averages(mean, var)
    return centred, of_each_example(var)
