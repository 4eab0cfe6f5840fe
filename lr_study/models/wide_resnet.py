"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

A 3×3 conv to 16 channels, then 3 groups of ``N = (d − 4) / 6`` pre-activation basic
blocks (He et al. 2016, "Identity mappings") with ``16k``, ``32k`` and ``64k`` channels
and strides 1, 2, 2, then BN → ReLU → global average pool → Dense. A block computes

    h = ReLU(BN(x));   y = conv3×3(dropout(ReLU(BN(conv3×3_s(h))))) + shortcut

where the shortcut is ``x`` when shape is kept and a 1×1 stride-``s`` conv of ``h``
otherwise, as in the authors' code. Convolutions have no bias and He-normal (fan-out)
initial weights, as there. Smith et al. (ICLR 2018, §5.1) train the 16-4 network on
CIFAR-10 with ghost batch norm over 128 examples: ``name='wide_resnet', depth=16,
width=4`` has 2,748,890 parameters, the paper's 2.7M.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lr_study.errors import ConfigError
from lr_study import checks
from lr_study.models.layers import dropout, norm_relu
from lr_study.models.registry import register

_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def _conv(module: nn.Module, channels: int, kernel: int, stride: int = 1) -> nn.Conv:
  """A bias-free 3×3 or 1×1 conv in ``module``'s compute and parameter dtypes."""
  return nn.Conv(channels, (kernel, kernel), strides=(stride, stride), padding='SAME',
                 use_bias=False, kernel_init=_conv_init, dtype=module.dtype,
                 param_dtype=module.param_dtype)


def _norm_relu(module: nn.Module, x: jax.Array, train: bool) -> jax.Array:
  return norm_relu(x, batch_norm=True, ghost_batch_size=module.ghost_batch_size, train=train,
                   axis_name=module.axis_name, param_dtype=module.param_dtype)


class WideBasicBlock(nn.Module):
  """A pre-activation basic block of two 3×3 convolutions, with dropout between them."""

  channels: int
  stride: int
  dropout: float
  ghost_batch_size: int
  axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = _norm_relu(self, x, train)
    keeps_shape = self.stride == 1 and x.shape[-1] == self.channels
    shortcut = x if keeps_shape else _conv(self, self.channels, 1, self.stride)(h)
    y = _norm_relu(self, _conv(self, self.channels, 3, self.stride)(h), train)
    y = _conv(self, self.channels, 3)(dropout(y, self.dropout, train))
    return y + shortcut


class WideResNet(nn.Module):
  """Logits of WRN-``depth``-``width``; ``depth − 4`` must be a multiple of 6.

  ``ghost_batch_size`` and ``axis_name`` (the pmap axis, ``None`` for one device) go to
  every ``GhostBatchNorm``; convolutions and the Dense layer compute in ``dtype`` (and so
  do the logits), parameters are ``param_dtype``.
  """

  depth: int
  width: int
  num_classes: int
  dropout: float = 0.0
  ghost_batch_size: int = 0
  axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = _conv(self, 16, 3)(x)
    for group, channels in enumerate((16 * self.width, 32 * self.width, 64 * self.width)):
      for block in range((self.depth - 4) // 6):
        stride = 2 if group > 0 and block == 0 else 1
        x = WideBasicBlock(channels, stride, self.dropout, self.ghost_batch_size,
                           self.axis_name, self.dtype, self.param_dtype)(x, train)
    x = _norm_relu(self, x, train)
    return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)(
        x.mean(axis=(1, 2)))


@register('wide_resnet')
def wide_resnet(num_classes: int, ghost_batch_size: int, axis_name: str | None = None,
                dtype: Any = jnp.float32, depth: int = 16, width: int = 4,
                dropout: float = 0.0) -> WideResNet:
  """``depth`` d = 6N + 4 (10, 16, 22, 28, ...), ``width`` k; ``dropout`` between the convs
  of each block (Zagoruyko & Komodakis use 0.3 in some CIFAR runs)."""
  depth = checks.integer('depth', depth, 1)
  if depth < 10 or (depth - 4) % 6:
    raise ConfigError(f'depth must be 6N + 4 with N >= 1 (10, 16, 22, 28, ...), '
                      f'got {depth}')
  return WideResNet(depth=depth, width=checks.integer('width', width, 1),
                    num_classes=num_classes, dropout=checks.fraction('dropout', dropout),
                    ghost_batch_size=ghost_batch_size, axis_name=axis_name, dtype=dtype)
