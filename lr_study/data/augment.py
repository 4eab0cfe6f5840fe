"""On-device CIFAR augmentation: 4-pixel padded random crop and horizontal flip.

The standard CIFAR recipe of He, Zhang, Ren & Sun, "Deep Residual Learning for Image
Recognition" (CVPR 2016, Sec. 4.2: "4 pixels are padded on each side, and a 32x32 crop
is randomly sampled from the padded image or its horizontal flip"), also used by
Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016) and by Smith et al. (2018).
PyTorch counterpart: ``transforms.RandomCrop(32, padding=4)`` then
``transforms.RandomHorizontalFlip()``, both before ``Normalize``, so the padding is black
(zero) pixels.

Everything is a pure function of explicit keys, so a batch is augmented identically
wherever and whenever it is drawn; it runs inside jit/pmap on uint8 or float images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PADDING = 4


def random_crop(key: jax.Array, image: jax.Array, padding: int = PADDING) -> jax.Array:
  """Zero-pads ``image`` [H, W, C] by ``padding`` on each side, crops [H, W, C] back.

  The crop's top-left corner is uniform over the ``(2 * padding + 1) ** 2`` offsets.
  """
  height, width, channels = image.shape
  padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  top, left = jax.random.randint(key, (2,), 0, 2 * padding + 1)
  return jax.lax.dynamic_slice(padded, (top, left, 0), (height, width, channels))


def random_flip(key: jax.Array, image: jax.Array) -> jax.Array:
  """Mirrors ``image`` [H, W, C] left-right with probability 1/2."""
  return jnp.where(jax.random.bernoulli(key), image[:, ::-1, :], image)


def augment_image(key: jax.Array, image: jax.Array) -> jax.Array:
  """Padded random crop, then random horizontal flip, of one image [H, W, C]."""
  crop_key, flip_key = jax.random.split(key)
  return random_flip(flip_key, random_crop(crop_key, image))


def augment_batch(keys: jax.Array, images: jax.Array) -> jax.Array:
  """``augment_image`` per example: ``keys`` [B, 2] (one key each), ``images`` [B, H, W, C]."""
  return jax.vmap(augment_image)(keys, images)
