"""Ghost batch normalisation: batch statistics over fixed-size slices of the batch.

Hoffer, Hubara & Soudry, "Train longer, generalize better: closing the generalization
gap in large batch training of neural networks" (NeurIPS 2017), §4.1; used by Smith,
Kindermans, Ying & Le (ICLR 2018) with ghost batches of 128 so that the noise batch
norm adds does not change when the batch size grows.

In training, the **global micro-batch** (one forward pass: ``M = D·m`` examples on ``D``
devices of ``m`` each, device ``d`` holding positions ``[d·m, (d+1)·m)``) is split into
``K = M / g`` ghost batches of ``g`` consecutive examples, whatever the device layout,
and ghost batch ``k`` is normalised with its own statistics over its examples and every
non-feature axis, in two passes (the mean first, then the centred squares):

    μ_k = mean(x_k),   σ²_k = mean((x_k − μ_k)²)   (biased, as in Ioffe & Szegedy 2015)
    y = γ · (x − μ_k) / √(σ²_k + ε) + β

so the outputs, the running averages and the gradients are those of one device holding
the whole global micro-batch. When ``g`` divides ``m`` every ghost lies on one device
and nothing is communicated; otherwise (a ghost spans devices) each device sums its
examples into their ghosts and the sums of all ``K`` ghosts are added across devices
with ``lax.psum`` over ``axis_name``. ``ghost_batch_size`` at least ``M`` is the whole
global micro-batch (batch norm synchronised over the devices); ``ghost_batch_size`` 0
is ordinary batch norm over the ``m`` examples the module sees (one device's
micro-batch, never reduced across devices). :func:`ghost_layout` checks a layout and
:func:`accumulation_split` chooses the gradient-accumulation split that keeps ghost
batches whole, both plain Python for the plan.

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

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from lr_study.errors import ConfigError
from lr_study import checks


@dataclasses.dataclass(frozen=True)
class GhostLayout:
  """How a global micro-batch of ``num_devices × per_device`` examples splits into ghosts.

  Attributes:
    global_micro_batch: ``M``, the examples of one forward pass over all devices.
    num_devices: ``D``.
    ghost_size: ``g``, the examples of each ghost batch (``ghost_batch_size``, or
      ``m`` for 0, or ``M`` when ``ghost_batch_size >= M``).
  """

  global_micro_batch: int
  num_devices: int
  ghost_size: int

  @property
  def per_device(self) -> int:
    """``m = M / D``."""
    return self.global_micro_batch // self.num_devices

  @property
  def num_ghosts(self) -> int:
    """``K = M / g``."""
    return self.global_micro_batch // self.ghost_size

  @property
  def local(self) -> bool:
    """Whether every ghost lies on one device (``g`` divides ``m``): no communication."""
    return self.per_device % self.ghost_size == 0


def ghost_layout(global_micro_batch: int, num_devices: int,
                 ghost_batch_size: int) -> GhostLayout:
  """The ghost batches of a global micro-batch of ``M`` examples spread over ``D`` devices.

  Valid when ``ghost_batch_size`` is 0 (``g = m``), divides ``M`` (consecutive slices of
  ``g``; local when it divides ``m = M / D`` too), or is at least ``M`` (``g = M``).

  Raises:
    ConfigError: a number is not a whole number in range, ``D`` does not divide ``M``,
      or ``ghost_batch_size`` is below ``M`` and does not divide it.
  """
  total = checks.integer('global micro-batch', global_micro_batch, 1)
  devices = checks.integer('num_devices', num_devices, 1)
  ghost = checks.integer('ghost_batch_size', ghost_batch_size, 0)
  if total % devices:
    raise ConfigError(f'global micro-batch {total} does not divide over {devices} devices')
  per_device = total // devices
  if ghost == 0:
    return GhostLayout(total, devices, per_device)
  if ghost >= total:
    return GhostLayout(total, devices, total)
  if total % ghost:
    raise ConfigError(f'ghost_batch_size {ghost} does not divide the micro-batch of {total} '
                      f'examples on {_on_devices(devices, per_device)}')
  return GhostLayout(total, devices, ghost)


def _on_devices(num_devices: int, per_device: int) -> str:
  return '1 device' if num_devices == 1 else f'{num_devices} devices ({per_device} each)'


def ghost_size(ghost_batch_size: int, batch_size: int) -> int:
  """The examples per ghost batch for a batch of ``batch_size`` on one device.

  ``ghost_batch_size`` 0 or ``>= batch_size`` gives the whole batch; the one-device
  case of :func:`ghost_layout`.

  Raises:
    ConfigError: ``ghost_batch_size`` is not an integer >= 0, or does not divide
      ``batch_size``.
  """
  return ghost_layout(batch_size, 1, ghost_batch_size).ghost_size


class DeviceSplit(NamedTuple):
  """One global batch on the devices: ``accumulation_steps · micro_batch_size`` =
  ``per_device_batch`` examples per device."""

  per_device_batch: int
  micro_batch_size: int
  accumulation_steps: int


def accumulation_split(batch_size: int, num_devices: int, max_per_device_batch: int,
                       ghost_batch_size: int) -> DeviceSplit:
  """The split of global batch ``B`` over ``D`` devices with the fewest micro-batches
  that keeps ghost batches whole.

  The per-device batch is ``P = B / D``; the split takes the smallest ``k`` dividing
  ``P`` with ``m = P / k <= max_per_device_batch`` (0: no limit) whose global
  micro-batch ``D·m`` is a whole number of ghosts of ``min(ghost_batch_size, B)``:
  ghost batches of the size one device would use with no limit. ``ghost_batch_size`` 0
  only bounds ``m``.

  Raises:
    ConfigError: one line naming ``B``, ``D``, ``max_per_device_batch`` and
      ``ghost_batch_size``, with a fix, when ``D`` does not divide ``B`` or no split
      exists.
  """
  total = checks.integer('batch_size', batch_size, 1)
  devices = checks.integer('num_devices', num_devices, 1)
  limit = checks.integer('max_per_device_batch', max_per_device_batch, 0)
  ghost = checks.integer('ghost_batch_size', ghost_batch_size, 0)
  if total % devices:
    raise ConfigError(f'global batch {total} does not divide over {devices} devices')
  per_device = total // devices
  target = min(ghost, total)

  def keeps_ghosts(micro: int) -> bool:  # D·m is a whole number (>= 1) of ghosts of target
    return ghost == 0 or (devices * micro >= target and devices * micro % target == 0)

  divisors = [k for k in range(1, per_device + 1) if per_device % k == 0]
  fits = [k for k in divisors if not limit or per_device // k <= limit]
  for k in fits:
    if keeps_ghosts(per_device // k):
      return DeviceSplit(per_device, per_device // k, k)
  fixes = [f'a ghost_batch_size dividing {devices * per_device // fits[0]}']
  whole = [per_device // k for k in divisors if keeps_ghosts(per_device // k)]
  if whole:
    fixes.insert(0, f'a max_per_device_batch of at least {min(whole)}')
  raise ConfigError(f'no accumulation split keeps ghost batches of {ghost} whole for global '
                    f'batch {total} on {_on_devices(devices, per_device)} with '
                    f'max_per_device_batch {limit}: use {" or ".join(fixes)}')


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
    position = jax.lax.axis_index(self.axis_name) * m + jnp.arange(m)
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
