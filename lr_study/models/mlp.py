"""A multilayer perceptron: Dense → [batch norm] → ReLU → [dropout] per hidden layer.

Raschka's MNIST net (STAT 453, L12 ``batchsize-64.ipynb``/``batchsize-1024.ipynb``:
784-75-45-10, ``Linear(bias=False) → BatchNorm1d → ReLU → Dropout`` with drop
probabilities 0.5 then 0.3, trained with plain SGD at LR 0.1) is

    config.model = ConfigDict(dict(name='mlp', widths=(75, 45), batch_norm=True,
                                   dropout=(0.5, 0.3)))

with 62,875 parameters (784·75 + 2·75 + 75·45 + 2·45 + 45·10 + 10), as in PyTorch.
Two differences from PyTorch: the running variance is the biased batch variance
(flax convention; PyTorch keeps the unbiased one), and the weights start from Flax's
LeCun-normal kernels instead of PyTorch's Kaiming-uniform ones.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lr_study.errors import ConfigError
from lr_study import checks
from lr_study.models.layers import dropout, norm_relu
from lr_study.models.registry import register


class MLP(nn.Module):
  """Logits of a fully connected ReLU net on flattened inputs.

  Attributes:
    widths: hidden layer widths.
    num_classes: output width.
    dropout: drop probability after each hidden layer, one per layer.
    batch_norm: ghost batch norm between each hidden Dense and its ReLU; the hidden
      Dense layers then have no bias (batch norm's β replaces it).
    ghost_batch_size: see ``GhostBatchNorm``.
    axis_name: the pmap axis the batch is spread over (``GhostBatchNorm``); ``None``
      for one device.
    dtype: the compute dtype of the Dense layers (and so of the logits).
    param_dtype: the parameters' dtype.
  """

  widths: Sequence[int]
  num_classes: int
  dropout: Sequence[float]
  batch_norm: bool = False
  ghost_batch_size: int = 0
  axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = x.reshape((x.shape[0], -1))
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    for width, rate in zip(self.widths, self.dropout, strict=True):
      x = nn.Dense(width, use_bias=not self.batch_norm, **dtypes)(x)
      x = norm_relu(x, batch_norm=self.batch_norm, ghost_batch_size=self.ghost_batch_size,
                    train=train, axis_name=self.axis_name, param_dtype=self.param_dtype)
      x = dropout(x, rate, train)
    return nn.Dense(self.num_classes, **dtypes)(x)


@register('mlp')
def mlp(num_classes: int, ghost_batch_size: int, axis_name: str | None = None,
        dtype: Any = jnp.float32, widths: Sequence[int] = (128,), batch_norm: bool = False,
        dropout: float | Sequence[float] = 0.0) -> MLP:
  """``widths``: hidden widths; ``dropout``: one probability for all, or one per layer."""
  widths = checks.integers('widths', widths, 1)
  if isinstance(dropout, Sequence) and not isinstance(dropout, str):
    if len(dropout) != len(widths):
      raise ConfigError(
          f'dropout {tuple(dropout)} does not match widths {widths}')
    rates = tuple(checks.fraction('dropout', r) for r in dropout)
  else:
    rates = (checks.fraction('dropout', dropout),) * len(widths)
  return MLP(widths=widths, num_classes=num_classes,
             batch_norm=checks.boolean('batch_norm', batch_norm), dropout=rates,
             ghost_batch_size=ghost_batch_size, axis_name=axis_name, dtype=dtype)
