"""Ghost batch normalisation: batch statistics over fixed-size slices of the batch.

Hoffer, Hubara & Soudry, "Train longer, generalize better: closing the generalization
gap in large batch training of neural networks" (NeurIPS 2017), §4.1; used by Smith,
Kindermans, Ying & Le (ICLR 2018) with ghost batches of 128 so that the noise batch
norm adds does not change when the batch size grows.

In training, a batch ``x`` of ``B`` examples is split into ``B / g`` ghost batches of
``g`` consecutive examples, and ghost batch ``k`` is normalised with its own statistics
over the examples and every non-feature axis:

    μ_k = mean(x_k),   σ²_k = mean((x_k − μ_k)²)   (biased, as in Ioffe & Szegedy 2015)
    y = γ · (x − μ_k) / √(σ²_k + ε) + β

The running averages (collection ``'batch_stats'``, names ``mean`` and ``var`` as in
``flax.linen.BatchNorm``) move towards the mean over ghost batches of their statistics:

    mean ← m · mean + (1 − m) · (1/K) Σ_k μ_k
    var  ← m · var  + (1 − m) · (1/K) Σ_k σ²_k

with ``m = momentum`` (0.9 by default, PyTorch's ``momentum=0.1``); they are left alone
while the module is initialising, as in ``flax.linen.BatchNorm``. In evaluation the
running averages replace ``μ_k`` and ``σ²_k``.

``ghost_batch_size`` 0, or at least the batch, is ordinary batch norm over the whole
batch the module sees (a device's batch, or a micro-batch under gradient accumulation).
The module never reduces across devices: the train step averages ``batch_stats`` across
devices with ``lax.pmean`` after each update.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lr_study.errors import ConfigError
from lr_study.models.checks import non_negative_int


def ghost_size(ghost_batch_size: int, batch_size: int) -> int:
  """The number of examples per ghost batch for a batch of ``batch_size`` examples.

  ``ghost_batch_size`` 0 or ``>= batch_size`` gives the whole batch.

  Raises:
    ConfigError: ``ghost_batch_size`` is not an integer >= 0, or does not divide
      ``batch_size``.
  """
  ghost_batch_size = non_negative_int('ghost_batch_size', ghost_batch_size)
  if ghost_batch_size == 0 or ghost_batch_size >= batch_size:
    return batch_size
  if batch_size % ghost_batch_size:
    raise ConfigError(f'ghost_batch_size {ghost_batch_size} does not divide the batch of '
                      f'{batch_size} examples')
  return ghost_batch_size


class GhostBatchNorm(nn.Module):
  """Batch norm over ghost batches of ``ghost_batch_size`` examples (features last).

  Attributes:
    ghost_batch_size: examples per ghost batch; 0 for the whole batch.
    momentum: decay ``m`` of the running averages (``flax.linen.BatchNorm`` convention).
    epsilon: ``ε`` added to the variance.
  """

  ghost_batch_size: int = 0
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
    features = (x.shape[-1],)
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, features, jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, features, jnp.float32)
    scale = self.param('scale', nn.initializers.ones, features, jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, features, jnp.float32)

    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
      centred = x - mean
    else:
      g = ghost_size(self.ghost_batch_size, x.shape[0])
      ghosts = x.reshape((x.shape[0] // g, g) + x.shape[1:])
      axes = tuple(range(1, ghosts.ndim - 1))
      mean = ghosts.mean(axes, keepdims=True)
      centred = ghosts - mean
      var = jnp.square(centred).mean(axes, keepdims=True)
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1 - m) * mean.reshape(-1, features[0]).mean(0)
        ra_var.value = m * ra_var.value + (1 - m) * var.reshape(-1, features[0]).mean(0)
    y = centred * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
    return y.reshape(x.shape)
