"""The gradient noise scale estimator against a problem whose B_simple is known exactly.

Linear regression with Gaussian noise on a fixed dataset of N examples, at a fixed
parameter point away from the optimum: per-example gradients over the whole dataset
(``jax.vmap(jax.grad(...))``) give the exact G (their mean), tr(Σ) (their mean squared
deviation from G) and B_simple = tr(Σ)/|G|². Batches are drawn with replacement, the
estimator's model (E|G_B|² = |G|² + tr(Σ)/B exactly). Each step draws K small batches of
B_SMALL examples, as K devices would hold them: |G_small|² is the mean of their squared
norms, |G_big|² the squared norm of their mean, B_big = K·B_SMALL.
"""

from __future__ import annotations

import doctest
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_study.training import gradient_noise

N = 4096
DIM = 8
B_SMALL = 16
K = 8  # small batches per step: the devices of a pmap step
B_BIG = K * B_SMALL
DRAWS = 2000
DECAY = 0.99


def _loss(params, x, y):
  return 0.5 * (x @ params['w'] + params['b'] - y) ** 2


@functools.lru_cache(maxsize=None)
def _problem():
  """Per-example gradients (a pytree with a leading axis N) and the exact |G|², tr(Σ)."""
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  x = jax.random.normal(keys[0], (N, DIM))
  w_true = jax.random.normal(keys[1], (DIM,))
  y = x @ w_true + 0.5 + jax.random.normal(keys[2], (N,))
  params = {'w': w_true + 0.15 * jax.random.normal(keys[3], (DIM,)), 'b': jnp.zeros(())}
  per_example = jax.vmap(jax.grad(_loss), (None, 0, 0))(params, x, y)
  mean = jax.tree_util.tree_map(lambda g: g.mean(0), per_example)
  g_sq = float(gradient_noise.sq_norm(mean))
  trace = float(gradient_noise.sq_norm(
      jax.tree_util.tree_map(lambda g, m: g - m, per_example, mean))) / N
  return per_example, g_sq, trace


@functools.lru_cache(maxsize=None)
def _draws(seed: int, draws: int) -> tuple[jax.Array, jax.Array]:
  """|G_small|² (mean over the K small batches) and |G_big|² of ``draws`` random steps."""
  per_example, _, _ = _problem()

  def one(key):
    idx = jax.random.randint(key, (K, B_SMALL), 0, N)
    small = jax.tree_util.tree_map(lambda g: g[idx].mean(1), per_example)  # K gradients
    small_sq = jnp.mean(jax.vmap(gradient_noise.sq_norm)(small))
    big = jax.tree_util.tree_map(lambda g: g.mean(0), small)
    return small_sq, gradient_noise.sq_norm(big)

  return jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(seed), draws))


def _run(small: jax.Array, big: jax.Array, decay: float) -> gradient_noise.GradientNoiseState:
  def step(state, norms):
    return gradient_noise.update(state, norms[0], norms[1], B_SMALL, B_BIG, decay), None
  state, _ = jax.lax.scan(step, gradient_noise.init(), (small, big))
  return state


def test_module_doctests_pass():
  result = doctest.testmod(gradient_noise)
  assert result.attempted > 0 and result.failed == 0


def test_sq_norm_sums_squares_over_every_leaf_in_float32():
  tree = {'a': jnp.array([3.0, 4.0]), 'b': (jnp.full((2, 2), 2.0, jnp.bfloat16), jnp.ones(()))}
  total = gradient_noise.sq_norm(tree)
  assert total.dtype == jnp.float32
  assert float(total) == 25.0 + 16.0 + 1.0


def test_two_halves_sq_norm_is_the_mean_of_the_halves_squared_norms():
  per_example, _, _ = _problem()
  halves = [jax.tree_util.tree_map(lambda g: g[i:i + 8].mean(0), per_example) for i in (0, 8)]
  whole = jax.tree_util.tree_map(lambda g: g[:16].mean(0), per_example)
  expected = (gradient_noise.sq_norm(halves[0]) + gradient_noise.sq_norm(halves[1])) / 2
  assert float(gradient_noise.two_halves_sq_norm(halves[0], whole)) == pytest.approx(
      float(expected), rel=1e-5)


def test_problem_sits_between_the_two_batch_sizes():
  _, g_sq, trace = _problem()
  assert B_SMALL < trace / g_sq < B_BIG  # both batch sizes carry information


def test_single_step_estimates_are_unbiased():
  _, g_sq, trace = _problem()
  small, big = _draws(seed=1, draws=4 * DRAWS)
  g_sq_est, trace_est = gradient_noise.unbiased_estimates(small, big, B_SMALL, B_BIG)
  for estimate, exact in ((g_sq_est, g_sq), (trace_est, trace)):
    standard_error = float(jnp.std(estimate)) / np.sqrt(estimate.size)
    assert abs(float(jnp.mean(estimate)) - exact) < 4 * standard_error
    assert abs(float(jnp.mean(estimate)) / exact - 1) < 0.03
  # The big batch's own squared norm overestimates |G|² by tr(Σ)/B_big: many standard errors.
  naive_bias = float(jnp.mean(big)) - g_sq
  assert naive_bias == pytest.approx(trace / B_BIG, rel=0.1)
  assert naive_bias > 10 * float(jnp.std(g_sq_est)) / np.sqrt(g_sq_est.size)


def test_smoothed_b_simple_within_10_percent_of_exact():
  _, g_sq, trace = _problem()
  exact = trace / g_sq
  state = _run(*_draws(seed=2, draws=DRAWS), DECAY)
  assert float(gradient_noise.b_simple(state)) == pytest.approx(exact, rel=0.10)


def test_smoothing_beats_a_single_step_ratio():
  _, g_sq, trace = _problem()
  exact = trace / g_sq
  small, big = _draws(seed=3, draws=DRAWS)
  g_sq_est, trace_est = gradient_noise.unbiased_estimates(small, big, B_SMALL, B_BIG)
  single_error = np.median(np.abs(np.asarray(trace_est / g_sq_est) / exact - 1))
  smoothed_error = abs(float(gradient_noise.b_simple(_run(small, big, DECAY))) / exact - 1)
  assert single_error > 0.1  # one step alone is typically outside the 10% band
  assert smoothed_error < single_error / 5


def test_the_first_measurement_is_its_own_estimate():
  state = gradient_noise.update(gradient_noise.init(), 5.0, 2.0, 2, 8, decay=0.99)
  assert float(state.ema_g_sq) == pytest.approx(0.01 / 2.0)  # the raw sum, weighted 1/|G_big|²
  g_sq, trace = gradient_noise.estimates(state)
  assert (float(g_sq), float(trace)) == pytest.approx((1.0, 8.0))


def test_each_measurement_weighs_one_over_its_big_batch_squared_norm():
  # Two measurements of equal memory but scales 100x apart: the average leans to the
  # recent small-scale one in proportion 100:1 instead of being ruled by the large one.
  old = (5.0, 2.0)  # |G|² = 1, tr(Σ) = 8
  new = (0.05, 0.02)  # |G|² = 0.01, tr(Σ) = 0.08
  state = gradient_noise.init()
  for small, big in (old, new):
    state = gradient_noise.update(state, small, big, 2, 8, decay=0.5)
  assert float(state.weight) == pytest.approx(0.5 * 0.5 / 2.0 + 0.5 / 0.02)
  w_old, w_new = 0.25 / 2.0, 0.5 / 0.02
  expected = [(w_old * a + w_new * b) / (w_old + w_new) for a, b in ((1.0, 0.01), (8.0, 0.08))]
  assert [float(x) for x in gradient_noise.estimates(state)] == pytest.approx(expected, rel=1e-5)
  assert float(gradient_noise.b_simple(state)) == pytest.approx(8.0, rel=1e-5)


def test_constant_measurements_are_recovered_whatever_their_number():
  state = gradient_noise.init()
  for _ in range(7):
    state = gradient_noise.update(state, 5.0, 2.0, 2, 8, decay=0.9)
  assert float(state.weight) == pytest.approx((1 - 0.9**7) / 2.0, rel=1e-6)
  assert [float(x) for x in gradient_noise.estimates(state)] == pytest.approx([1.0, 8.0], rel=1e-6)


def test_the_averages_hold_when_decay_changes_between_updates():
  state = gradient_noise.init()
  for decay in (0.5, 0.9, 0.99, 0.0, 0.95):
    state = gradient_noise.update(state, 5.0, 2.0, 2, 8, decay=decay)
    assert [float(x) for x in gradient_noise.estimates(state)] == pytest.approx([1.0, 8.0],
                                                                                 rel=1e-6)


def test_b_simple_is_nan_before_any_update_and_inf_while_g_sq_not_positive():
  assert np.isnan(float(gradient_noise.b_simple(gradient_noise.init())))
  # |G_big|² below |G_small|²·B_small/B_big: the |G|² estimate is negative.
  state = gradient_noise.update(gradient_noise.init(), 5.0, 1.0, 2, 8, decay=0.9)
  assert float(gradient_noise.estimates(state)[0]) < 0
  assert float(gradient_noise.b_simple(state)) == np.inf


def test_estimates_are_float32_accurate_at_large_batches():
  # Expected squared norms for |G|² = 1e-3, tr(Σ) = 50 at B_small = 4096, B_big = 65536.
  g_sq, trace, b_small, b_big = 1e-3, 50.0, 4096, 65536
  small = np.float32(g_sq + trace / b_small)
  big = np.float32(g_sq + trace / b_big)
  g_sq_est, trace_est = jax.jit(gradient_noise.unbiased_estimates)(small, big, b_small, b_big)
  assert g_sq_est.dtype == trace_est.dtype == jnp.float32
  assert float(g_sq_est) == pytest.approx(g_sq, rel=1e-3)
  assert float(trace_est) == pytest.approx(trace, rel=1e-5)


def test_functions_jit_and_match_eager():
  small, big = _draws(seed=4, draws=20)
  eager = gradient_noise.init()
  jitted = jax.jit(gradient_noise.init)()
  jit_update = jax.jit(gradient_noise.update)
  for s, b in zip(small, big):
    eager = gradient_noise.update(eager, s, b, B_SMALL, B_BIG, DECAY)
    jitted = jit_update(jitted, s, b, B_SMALL, B_BIG, DECAY)
  assert float(jax.jit(gradient_noise.b_simple)(jitted)) == pytest.approx(
      float(gradient_noise.b_simple(eager)), rel=1e-6)
  tree = {'a': jnp.arange(3.0)}
  assert float(jax.jit(gradient_noise.sq_norm)(tree)) == 5.0


def test_pmap_step_per_device_gradients_are_the_small_batches():
  """In a pmap step: B_small = per-device batch, B_big = global batch (module docstring)."""
  devices = jax.local_device_count()
  if devices < 2:
    pytest.skip('needs several devices (tests/conftest.py fakes 8 CPU devices)')
  per_example, _, _ = _problem()
  per_device = 4
  idx = jax.random.randint(jax.random.PRNGKey(5), (devices, per_device), 0, N)
  local = jax.tree_util.tree_map(lambda g: g[idx].mean(1), per_example)  # [devices, ...]

  def step(state, local_grads):
    small = jax.lax.pmean(gradient_noise.sq_norm(local_grads), 'batch')
    grads = jax.lax.pmean(local_grads, 'batch')
    return gradient_noise.update(state, small, gradient_noise.sq_norm(grads), per_device,
                                 devices * per_device, DECAY)

  states = jax.pmap(step, axis_name='batch', in_axes=(None, 0))(gradient_noise.init(), local)
  small = jnp.mean(jax.vmap(gradient_noise.sq_norm)(local))
  big = gradient_noise.sq_norm(jax.tree_util.tree_map(lambda g: g.mean(0), local))
  host = gradient_noise.update(gradient_noise.init(), small, big, per_device,
                               devices * per_device, DECAY)
  for leaf, expected in zip(jax.tree_util.tree_leaves(states), jax.tree_util.tree_leaves(host)):
    np.testing.assert_allclose(np.asarray(leaf), float(expected), rtol=1e-5)
