"""The loops lr_study is compared with: one ``jax.jit`` step fed three ways, and PyTorch.

The jit step is the Flax MNIST example's (``flax.training.train_state.TrainState``,
``optax.sgd(lr, momentum=0.9)``, ``nn.Dense`` layers, softmax cross-entropy; loss and
accuracy per step, read back at the end of each epoch), fed by

* ``jax_jit_device_batch``: one fixed batch already on the device, every update. No
  input pipeline can feed the step faster: this is the **bound**;
* ``jax_jit``: batches sliced on the host by a NumPy permutation per epoch;
* ``jax_jit_tfdata``: the example's ``tf.data`` pipeline, ``shuffle(1024).batch(B,
  drop_remainder=True).prefetch(1)``.

PyTorch (not a dependency) runs the same net with ``randperm`` slicing or a
``DataLoader`` when it is importable.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Iterator, Sequence

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.throughput.loops import MOMENTUM, WIDTHS, XLA_COMPILES
from lr_study.data.sources import DatasetArrays
from lr_study.runtime.quiet_tf import import_tensorflow

Batches = Callable[[], Iterator[tuple[Any, Any]]]  # each call: one epoch of batches


class DenseMLP(nn.Module):
  """784-256-256-10 with ReLU, as in the Flax examples."""

  widths: Sequence[int]
  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape((x.shape[0], -1))
    for width in self.widths:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


@functools.cache
def dense_mlp(num_classes: int) -> DenseMLP:
  """One module per class count: the train state's ``apply_fn`` is a static field, so
  later runs reuse the compiled step, as lr_study's later seeds do."""
  return DenseMLP(WIDTHS, num_classes)


@functools.cache
def sgd(learning_rate: float) -> optax.GradientTransformation:
  """One optimizer per LR, the state's other static field (same reason)."""
  return optax.sgd(learning_rate, momentum=MOMENTUM)


@jax.jit
def jit_train_step(state: train_state.TrainState, images: jax.Array, labels: jax.Array
                   ) -> tuple[train_state.TrainState, jax.Array, jax.Array]:
  """One SGD update on a batch; returns the state, loss and accuracy."""

  def loss_fn(params):
    logits = state.apply_fn({'params': params}, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return state.apply_gradients(grads=grads), loss, accuracy


@dataclasses.dataclass
class HostData:
  """Train and test splits normalized once to float32 on the host, flat rows [N, H·W·C]."""

  images: np.ndarray
  labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray


def host_data(arrays: DatasetArrays) -> HostData:
  mean = np.asarray(arrays.spec.mean, np.float32)
  std = np.asarray(arrays.spec.std, np.float32)

  def normalize(images: np.ndarray) -> np.ndarray:
    x = (images.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.reshape(len(images), -1))

  return HostData(normalize(arrays.train.images), arrays.train.labels.astype(np.int32),
                  normalize(arrays.test.images), arrays.test.labels.astype(np.int32))


def tfdata_batches(data: HostData, batch_size: int, seed: int) -> Batches:
  """The Flax MNIST example's input pipeline on the normalized host arrays."""
  tf = import_tensorflow()
  dataset = (tf.data.Dataset.from_tensor_slices((data.images, data.labels))
             .shuffle(1024, seed=seed).batch(batch_size, drop_remainder=True).prefetch(1))
  return dataset.as_numpy_iterator


def numpy_batches(data: HostData, batch_size: int, seed: int) -> Batches:
  """Batches sliced on the host by a fresh NumPy permutation each epoch."""
  rng = np.random.default_rng(seed)
  steps = len(data.labels) // batch_size

  def epoch() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    perm = rng.permutation(len(data.labels))[:steps * batch_size]
    for idx in perm.reshape((steps, batch_size)):
      yield data.images[idx], data.labels[idx]

  return epoch


def device_batches(data: HostData, batch_size: int, seed: int) -> Batches:
  """The same fixed batch, already on the device, for every update of an epoch."""
  fixed = np.random.default_rng(seed).permutation(len(data.labels))[:batch_size]
  batch = jax.device_put((data.images[fixed], data.labels[fixed]))
  steps = len(data.labels) // batch_size
  return lambda: iter([batch] * steps)


JIT_LOOPS = {'jax_jit_device_batch': device_batches, 'jax_jit': numpy_batches,
             'jax_jit_tfdata': tfdata_batches}
TORCH_LOOPS = ('torch_randperm', 'torch_dataloader')


def jax_jit_run(data: HostData, num_classes: int, batch_size: int, epochs: int,
                learning_rate: float, seed: int, loop: str = 'jax_jit') -> dict[str, Any]:
  """``epochs`` epochs of the jit loop ``loop`` (:data:`JIT_LOOPS`) from a fresh train
  state, as the example's ``create_train_state`` makes it."""
  start, compiles = time.perf_counter(), len(XLA_COMPILES)
  model = dense_mlp(num_classes)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, data.images.shape[1])))['params']
  state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                        tx=sgd(learning_rate))
  epoch_batches = JIT_LOOPS[loop](data, batch_size, seed)
  seconds, first = [], None
  for _ in range(epochs):
    epoch_start = time.perf_counter()
    losses, accuracies = [], []
    for batch in epoch_batches():
      state, loss, accuracy = jit_train_step(state, *batch)
      losses.append(loss)
      accuracies.append(accuracy)
      if first is None:
        jax.block_until_ready(state)
        first = (time.perf_counter(), len(XLA_COMPILES))
    jax.device_get((losses, accuracies))
    seconds.append(time.perf_counter() - epoch_start)
  logits = model.apply({'params': state.params}, data.test_images)
  return {'epoch_seconds': seconds, 'start': start, 'time_to_first_update_s': first[0] - start,
          'first_dispatch_updates': 1, 'xla_compiles': len(XLA_COMPILES) - compiles,
          'xla_compiles_before_first_update': first[1] - compiles,
          'final_test_accuracy': float(np.mean(np.argmax(logits, -1) == data.test_labels))}


def torch_module() -> Any:
  """``torch``, or None when it is not installed."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return torch


def torch_run(torch: Any, data: HostData, num_classes: int, batch_size: int, epochs: int,
              learning_rate: float, seed: int, loop: str) -> dict[str, Any]:
  """``epochs`` epochs of the PyTorch loop ``loop`` (:data:`TORCH_LOOPS`)."""
  start = time.perf_counter()
  torch.manual_seed(seed)
  x, y = torch.from_numpy(data.images), torch.from_numpy(data.labels.astype(np.int64))
  layers, width_in = [], x.shape[1]
  for width in WIDTHS:
    layers += [torch.nn.Linear(width_in, width), torch.nn.ReLU()]
    width_in = width
  model = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, num_classes))
  optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=MOMENTUM)
  loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                       batch_size=batch_size, shuffle=True, drop_last=True)
  steps = len(y) // batch_size

  def batches() -> Iterator[tuple[Any, Any]]:
    if loop == 'torch_dataloader':
      yield from loader
      return
    perm = torch.randperm(len(y))
    for i in range(steps):
      idx = perm[i * batch_size:(i + 1) * batch_size]
      yield x[idx], y[idx]

  seconds, first = [], None
  for _ in range(epochs):
    epoch_start = time.perf_counter()
    total = torch.zeros(())
    for xb, yb in batches():
      optimizer.zero_grad(set_to_none=True)
      loss = torch.nn.functional.cross_entropy(model(xb), yb)
      loss.backward()
      optimizer.step()
      total += loss.detach()
      if first is None:
        first = time.perf_counter()
    float(total)
    seconds.append(time.perf_counter() - epoch_start)
  with torch.no_grad():
    predicted = model(torch.from_numpy(data.test_images)).argmax(-1).numpy()
  return {'epoch_seconds': seconds, 'start': start, 'time_to_first_update_s': first - start,
          'first_dispatch_updates': 1,
          'final_test_accuracy': float(np.mean(predicted == data.test_labels))}
