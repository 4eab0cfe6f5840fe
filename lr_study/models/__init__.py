"""Flax linen models, each built by name from ``config.model``, all with ghost batch norm.

``build_model(config.model, num_classes, ghost_batch_size, axis_name, dtype)`` returns a
module called as ``model.apply(variables, x, train=..., rngs={'dropout': key},
mutable=['batch_stats'])`` on float32 ``[B, H, W, C]`` inputs, returning logits
``[B, num_classes]`` computed in ``dtype`` (``config.compute_dtype``: float32, or
bfloat16 with float32 parameters and batch-norm statistics); initialise it with
``model.init({'params': key, 'dropout': key}, x, train=False)`` (outside the pmap: one
device). With ``axis_name`` the pmap axis, ghost batches are slices of the global
micro-batch whatever the number of devices (``GhostBatchNorm``; the layout's arithmetic
is ``lr_study.batching``'s).
"""

from lr_study.models import cnn as _cnn  # noqa: F401  (registers the models)
from lr_study.models import mlp as _mlp  # noqa: F401
from lr_study.models import wide_resnet as _wide_resnet  # noqa: F401
from lr_study.models.cnn import CNN
from lr_study.models.ghost_batch_norm import GhostBatchNorm
from lr_study.models.mlp import MLP
from lr_study.models.registry import MODELS, build_model
from lr_study.models.wide_resnet import WideResNet

__all__ = ['CNN', 'GhostBatchNorm', 'MLP', 'WideResNet', 'build_model', 'MODELS']
