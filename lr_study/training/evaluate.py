"""Evaluation: loss and accuracy of the model on every evaluation split, each example once.

In memory each split is one pmapped call: every device scans its ``[steps, per_device]``
index batches (``in_memory.eval_index_batches``), padded positions masked out. Streaming,
each padded and masked batch is one pmapped call. Sums of loss, correct answers and
examples are added over devices (and batches); the metrics are their ratios.

The pmapped functions are made once per model (and normalisation), so every run and
seed of a study that shares a model shares their compiles: one per split shape.
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
from lr_study.data.in_memory import DeviceData, normalize, take_eval_batch
from lr_study.runtime.devices import AXIS
from lr_study.training.step import TrainState, cross_entropy_and_accuracy

Evaluator = Callable[[TrainState], dict[str, float]]


def _metrics(name: str, sums: tuple[Any, Any, Any]) -> dict[str, float]:
  loss, correct, count = (float(v[0]) for v in sums)
  return {f'{name}_loss': loss / count, f'{name}_accuracy': correct / count,
          f'{name}_examples': int(count)}


def _eval_sums(model: nn.Module, params: Any, batch_stats: Any, x: jax.Array, y: jax.Array,
               mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(loss sum, correct sum, count) over the examples with mask 1."""
  logits = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
  loss, correct = cross_entropy_and_accuracy(logits, y)
  return (loss * mask).sum(), (correct * mask).sum(), mask.sum()


@functools.cache
def make_eval_step(model: nn.Module) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
  """The pmapped evaluation of a whole device-resident split in one call.

  Each device scans over its ``[steps, per_device]`` index batches; padded positions
  have mask 0, so every example is counted once. Returns (loss sum, correct sum, count),
  summed over devices.
  """

  def eval_all(params, batch_stats, data: DeviceData, idx: jax.Array, mask: jax.Array):
    def one_batch(sums, inputs):
      batch_idx, batch_mask = inputs
      x, y = take_eval_batch(data.images, data.labels, batch_idx, data.mean, data.std)
      return jax.tree.map(jnp.add, sums, _eval_sums(model, params, batch_stats, x, y,
                                                    batch_mask)), None

    sums, _ = jax.lax.scan(one_batch, (jnp.zeros(()), jnp.zeros(()), jnp.zeros(())), (idx, mask))
    return jax.lax.psum(sums, AXIS)

  return jax.pmap(eval_all, axis_name=AXIS)


@functools.cache
def make_stream_eval_step(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]
                          ) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
  """The pmapped evaluation of one streamed, padded and masked batch, summed over devices;
  ``mean`` and ``std`` per channel."""

  def eval_batch(params, batch_stats, batch: dict[str, jax.Array]):
    x = normalize(batch['image'], mean, std)
    return jax.lax.psum(_eval_sums(model, params, batch_stats, x, batch['label'],
                                   batch['mask']), AXIS)

  return jax.pmap(eval_batch, axis_name=AXIS)


def evaluator(feed: Feed, model: nn.Module) -> Evaluator:
  """``evaluate(state)``: ``{split}_loss``, ``{split}_accuracy``, ``{split}_examples`` for
  the test split and, when carved, the validation split."""
  if feed.streaming:
    eval_step = make_stream_eval_step(model, tuple(np.ravel(feed.spec.mean)),
                                      tuple(np.ravel(feed.spec.std)))
  else:
    eval_step = make_eval_step(model)

  def evaluate(state: TrainState) -> dict[str, float]:
    out = {}
    if not feed.streaming:
      for name, split in feed.eval_splits.items():
        out.update(_metrics(name, eval_step(state.params, state.batch_stats, split.data,
                                            split.idx, split.mask)))
      return out
    for name in feed.eval_split_names:
      sums = None
      for batch in streaming.eval_batches(feed.dataset_cfg, name, feed.dataset_cfg.eval_batch_size,
                                          jax.local_device_count()):
        batch_sums = eval_step(state.params, state.batch_stats, batch)
        sums = batch_sums if sums is None else jax.tree.map(np.add, sums, batch_sums)
      out.update(_metrics(name, sums))
    return out

  return evaluate
