"""On-device CIFAR augmentation: padded random crop and horizontal flip, from explicit keys."""

from __future__ import annotations

import jax
import numpy as np

from lr_study.data import augment

IMAGES = np.random.RandomState(0).randint(1, 256, (16, 32, 32, 3)).astype(np.uint8)


def _keys(seed: int, n: int) -> jax.Array:
  return jax.random.split(jax.random.PRNGKey(seed), n)


def test_augmentation_is_deterministic_given_its_keys():
  keys = _keys(0, 16)
  a = jax.jit(augment.augment_batch)(keys, IMAGES)
  b = augment.augment_batch(keys, IMAGES)
  np.testing.assert_array_equal(a, b)


def test_augmentation_changes_with_the_key():
  a = np.asarray(augment.augment_batch(_keys(0, 16), IMAGES))
  b = np.asarray(augment.augment_batch(_keys(1, 16), IMAGES))
  assert sum(not np.array_equal(x, y) for x, y in zip(a, b)) >= 12


def test_augment_batch_uses_one_key_per_example():
  keys = _keys(2, 16)
  batch = augment.augment_batch(keys, IMAGES)
  for i in (0, 5, 15):
    np.testing.assert_array_equal(batch[i], augment.augment_image(keys[i], IMAGES[i]))


def test_random_crop_keeps_the_shape_and_is_a_window_of_the_zero_padded_image():
  padded = np.pad(IMAGES[0], ((4, 4), (4, 4), (0, 0)))
  offsets = {padded[top:top + 32, left:left + 32].tobytes(): (top, left)
             for top in range(9) for left in range(9)}
  assert len(offsets) == 81
  crops = np.asarray(jax.vmap(augment.random_crop, in_axes=(0, None))(_keys(3, 1000), IMAGES[0]))
  assert crops.shape == (1000, 32, 32, 3) and crops.dtype == np.uint8
  seen = [offsets.get(crop.tobytes()) for crop in crops]
  assert None not in seen
  assert len(set(seen)) == 81  # every offset of the 4-pixel padding occurs


def test_random_flip_mirrors_left_right_about_half_the_time():
  outs = np.asarray(jax.vmap(augment.random_flip, in_axes=(0, None))(_keys(4, 1000), IMAGES[1]))
  flipped = (outs == IMAGES[1][:, ::-1, :]).all(axis=(1, 2, 3))
  kept = (outs == IMAGES[1]).all(axis=(1, 2, 3))
  assert (flipped ^ kept).all()
  assert 440 <= flipped.sum() <= 560
