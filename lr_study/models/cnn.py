"""A small CNN for MNIST-sized inputs.

Per conv layer: 3×3 convolution ('SAME') → [batch norm] → ReLU → 2×2 max pool (stride 2);
then flatten, hidden Dense → [batch norm] → ReLU → [dropout], and a Dense to the logits
(the LeNet pattern, LeCun et al. 1998, with ReLU and max pooling as in Raschka's STAT 453
L13 CNNs). The default, conv 32 and 64 then Dense 128, has 421,642 parameters on 28×28×1
inputs (320 + 18,496 + 3136·128 + 128 + 1,290).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lr_study import checks
from lr_study.models.layers import dropout, norm_relu
from lr_study.models.registry import register


class CNN(nn.Module):
  """Logits of a conv-pool stack followed by fully connected layers.

  Attributes:
    features: output channels of each 3×3 conv layer (each followed by a 2×2 max pool).
    dense_widths: hidden Dense widths after flattening.
    num_classes: output width.
    batch_norm: ghost batch norm before each ReLU; the layers it follows have no bias.
    dropout: drop probability after each hidden Dense layer.
    ghost_batch_size: see ``GhostBatchNorm``.
    axis_name: the pmap axis the batch is spread over (``GhostBatchNorm``); ``None``
      for one device.
    dtype: the compute dtype of the Conv and Dense layers (and so of the logits).
    param_dtype: the parameters' dtype.
  """

  features: Sequence[int]
  dense_widths: Sequence[int]
  num_classes: int
  batch_norm: bool = False
  dropout: float = 0.0
  ghost_batch_size: int = 0
  axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = dict(batch_norm=self.batch_norm, ghost_batch_size=self.ghost_batch_size, train=train,
                axis_name=self.axis_name, param_dtype=self.param_dtype)
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    for channels in self.features:
      x = nn.Conv(channels, (3, 3), padding='SAME', use_bias=not self.batch_norm, **dtypes)(x)
      x = nn.max_pool(norm_relu(x, **norm), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    for width in self.dense_widths:
      x = nn.Dense(width, use_bias=not self.batch_norm, **dtypes)(x)
      x = dropout(norm_relu(x, **norm), self.dropout, train)
    return nn.Dense(self.num_classes, **dtypes)(x)


@register('cnn')
def cnn(num_classes: int, ghost_batch_size: int, axis_name: str | None = None,
        dtype: Any = jnp.float32, features: Sequence[int] = (32, 64),
        dense_widths: Sequence[int] = (128,), batch_norm: bool = False,
        dropout: float = 0.0) -> CNN:
  return CNN(features=checks.integers('features', features, 1),
             dense_widths=checks.integers('dense_widths', dense_widths, 1),
             num_classes=num_classes, batch_norm=checks.boolean('batch_norm', batch_norm),
             dropout=checks.fraction('dropout', dropout), ghost_batch_size=ghost_batch_size,
             axis_name=axis_name, dtype=dtype)
