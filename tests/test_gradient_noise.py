"""The gradient noise scale against exact per-example values.

Exact values come from per-example gradients (``jax.vmap(jax.grad(...))``) over every
example: G is their mean, tr(Σ) their mean squared deviation from G (divisor N), and
B_simple = tr(Σ)/|G|². Three cases: the finite-population formula and the two strata by
enumerating every batch of a tiny problem; a logistic regression whose per-example
gradients span many orders of magnitude (most examples fitted, a few not); and the real
digits MLP at the checkpoints of the default study's ``decay`` run, over the whole split
and in two strata picked by the losses the run kept.
"""

from __future__ import annotations

import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lr_study.errors import ConfigError
from lr_study.training import gradient_noise
from lr_study.training.step import sq_norm


def _exact(per_example) -> tuple[float, float]:
  """(|G|², tr(Σ)) of per-example gradients (a pytree with a leading axis N)."""
  mean = jax.tree.map(lambda g: g.mean(0), per_example)
  n = jax.tree_util.tree_leaves(per_example)[0].shape[0]
  deviations = jax.tree.map(lambda g, m: g - m, per_example, mean)
  return float(sq_norm(mean)), float(sq_norm(deviations)) / n


def _chunk_measurement(per_example, order: np.ndarray, chunk: int, chunks: int):
  """The measurement of ``gradient_noise.measure_fn`` from per-example gradients: the
  first ``chunks·chunk`` examples of ``order`` cut into chunks, their mean gradients."""
  idx = order[:chunks * chunk].reshape(chunks, chunk)
  grads = jax.tree.map(lambda g: g[idx].mean(1), per_example)
  big = float(sq_norm(jax.tree.map(lambda g: g.mean(0), grads)))
  small = float(np.mean([float(sq_norm(jax.tree.map(lambda g: g[j], grads)))
                         for j in range(chunks)]))
  return big, small


def test_the_expected_squared_norm_without_replacement_is_the_finite_population_formula():
  per_example = {'w': jax.random.normal(jax.random.PRNGKey(0), (7, 3)) + 0.3}
  g_sq, trace = _exact(per_example)
  for b in (1, 2, 3, 7):
    batches = [np.array(c) for c in itertools.combinations(range(7), b)]
    mean_sq = np.mean([float(sq_norm(per_example['w'][c].mean(0))) for c in batches])
    assert mean_sq == pytest.approx(g_sq + gradient_noise.finite_population(b, 7) * trace,
                                    rel=1e-5)


def test_the_estimates_are_unbiased_over_every_batch_pair_of_a_tiny_problem():
  # Every ordered split of 6 examples into chunks of 2: the estimates' mean is exact.
  per_example = {'w': jax.random.normal(jax.random.PRNGKey(1), (6, 4)) - 0.2}
  g_sq, trace = _exact(per_example)
  estimates = [gradient_noise.unbiased_estimates(
      *reversed(_chunk_measurement(per_example, np.array(p), 2, 2)), 2, 4, 6)
               for p in itertools.permutations(range(6))]
  assert np.mean([e[0] for e in estimates]) == pytest.approx(g_sq, rel=1e-4)
  assert np.mean([e[1] for e in estimates]) == pytest.approx(trace, rel=1e-4)


def test_the_two_strata_estimates_are_unbiased_over_every_sample_of_a_tiny_problem():
  # 10 examples, the 4 "hard" ones all measured in 2 chunks of 2 (each of their 3
  # pairings), 4 of the 6 others in 2 chunks of 2 (each of their ordered draws).
  g = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (10, 3))) + 0.4
  g_sq, trace = _exact({'w': g})
  hard, easy = g[:4], g[4:]
  estimates = []
  for pairing in ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2)):
    hard_chunks = hard[list(pairing)].reshape(2, 2, 3).mean(1)
    for draw in itertools.permutations(range(6), 4):
      easy_chunks = easy[list(draw)].reshape(2, 2, 3).mean(1)
      stratum = lambda c: (np.mean(np.sum(c**2, 1)), np.sum(c.mean(0)**2))
      estimates.append(gradient_noise.stratified_estimates(
          10, 2, easy=(*stratum(easy_chunks), 4), hard=(*stratum(hard_chunks), 4),
          cross=hard_chunks.mean(0) @ easy_chunks.mean(0)))
  assert np.mean([e[0] for e in estimates]) == pytest.approx(g_sq, rel=1e-6)
  assert np.mean([e[1] for e in estimates]) == pytest.approx(trace, rel=1e-6)


def _logistic_per_example():
  """Per-example gradients and losses of a logistic regression trained until most examples
  are fitted: the gradients' squared norms span many orders of magnitude."""
  keys = jax.random.split(jax.random.PRNGKey(2), 3)
  n, dim = 2048, 16
  x = jax.random.normal(keys[0], (n, dim))
  y = (x @ jax.random.normal(keys[1], (dim,)) + 0.3 * jax.random.normal(keys[2], (n,)) > 0)

  def loss(w, xi, yi):
    return jnp.logaddexp(0.0, xi @ w) - yi * (xi @ w)

  w = jnp.zeros(dim)
  for _ in range(300):
    w = w - 2.0 * jax.grad(lambda w: jax.vmap(loss, (None, 0, 0))(w, x, y).mean())(w)
  return ({'w': jax.vmap(jax.grad(loss), (None, 0, 0))(w, x, y)},
          np.asarray(jax.vmap(loss, (None, 0, 0))(w, x, y)))


@pytest.mark.slow
def test_the_measurement_agrees_with_exact_values_when_gradients_span_orders_of_magnitude():
  per_example, _ = _logistic_per_example()
  norms = np.asarray(jnp.sum(per_example['w'] ** 2, axis=1))
  assert norms.max() / np.median(norms) > 1e4  # the case the 1/|G_big|² weighting failed
  g_sq, trace = _exact(per_example)
  order = np.random.default_rng(0).permutation(2048)
  big, small = _chunk_measurement(per_example, order, 32, 64)
  logged = gradient_noise.metrics(2048, 32, (small, big, 2048))
  assert logged['grad_norm_sq'] == pytest.approx(g_sq, rel=1e-3)
  assert logged['trace_sigma'] == pytest.approx(trace, rel=0.25)
  assert logged['gradient_noise_scale'] == pytest.approx(trace / g_sq, rel=0.25)


@pytest.mark.slow
def test_two_strata_of_half_the_examples_agree_with_exact_values_where_few_carry_the_noise():
  # B_simple ≈ 9,600 > N = 2,048, and the 512 examples of highest loss hold 99.7% of
  # Σ|g_i|²: those 512, all, and 512 of the 1,536 others give |G|² within 5% at every
  # draw, where 1,024 drawn uniformly miss it by far more.
  per_example, losses = _logistic_per_example()
  g_sq, trace = _exact(per_example)
  hard = np.argsort(-losses)[:512]
  rest = np.setdiff1d(np.arange(2048), hard)
  for seed in range(5):
    sample = np.random.default_rng(seed).permutation(rest)[:512]
    hard_big, hard_small = _chunk_measurement(per_example, hard, 32, 16)
    easy_big, easy_small = _chunk_measurement(per_example, sample, 32, 16)
    cross = float(per_example['w'][hard].mean(0) @ per_example['w'][sample].mean(0))
    logged = gradient_noise.metrics(2048, 32, (easy_small, easy_big, 512),
                                    (hard_small, hard_big, 512), cross)
    assert logged['grad_norm_sq'] == pytest.approx(g_sq, rel=0.05)
    assert logged['trace_sigma'] == pytest.approx(trace, rel=0.05)
  uniform = [gradient_noise.unbiased_estimates(*reversed(_chunk_measurement(
      per_example, np.random.default_rng(seed).permutation(2048), 32, 32)), 32, 1024, 2048)[0]
             for seed in range(5)]
  assert max(abs(u / g_sq - 1) for u in uniform) > 0.5


def _linear_per_example():
  """Per-example gradients of a Gaussian linear regression away from its optimum."""
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  n, dim = 2048, 8
  x = jax.random.normal(keys[0], (n, dim))
  w_true = jax.random.normal(keys[1], (dim,))
  y = x @ w_true + 0.5 + jax.random.normal(keys[2], (n,))
  params = {'w': w_true + 0.15 * jax.random.normal(keys[3], (dim,)), 'b': jnp.zeros(())}
  loss = lambda p, xi, yi: 0.5 * (xi @ p['w'] + p['b'] - yi) ** 2
  return jax.vmap(jax.grad(loss), (None, 0, 0))(params, x, y)


@pytest.mark.slow
def test_the_estimates_from_a_subset_of_examples_are_unbiased():
  # n = 512 of N = 2048: |G_big|² holds κ(n)·tr(Σ) of noise, which the estimate removes.
  per_example = _linear_per_example()
  g_sq, trace = _exact(per_example)
  results = np.array([gradient_noise.unbiased_estimates(*reversed(_chunk_measurement(
      per_example, np.random.default_rng(seed).permutation(2048), 32, 16)), 32, 512, 2048)
                      for seed in range(200)])
  assert results[:, 0].mean() == pytest.approx(g_sq, rel=0.05)
  assert results[:, 1].mean() == pytest.approx(trace, rel=0.05)


def test_a_gradient_not_resolved_from_its_noise_has_an_infinite_scale():
  assert gradient_noise.b_simple(-1e-6, 0.5) == float('inf')
  assert gradient_noise.b_simple(0.5, 1.0) == 2.0


def test_fewer_than_two_chunks_is_a_one_line_error():
  with pytest.raises(ConfigError, match='gradient_noise_batch_size=1024 leaves 1 chunk'):
    gradient_noise.num_chunks(1437, 1024, 0, 1)
  with pytest.raises(ConfigError, match='leaves 3 chunk.* need 2 in each half, hard and easy'):
    gradient_noise.num_chunks(1437, 32, 96, 1)
  assert gradient_noise.num_chunks(1437, 32, 0, 1) == (0, 44)  # the whole split
  assert gradient_noise.num_chunks(1437, 32, 320, 2) == (4, 6)  # part of it: two strata
  assert gradient_noise.num_chunks(1437, 32, 320, 2, streaming=True) == (0, 10)


# --- the real digits MLP, at the checkpoints of the default study's decay run


@pytest.fixture(scope='module', params=[0, 512], ids=['whole_split', 'two_strata_of_512'])
def decay_run(request, tmp_path_factory):
  """The default study's ``decay`` variant, seed 0, checkpointed every 10 epochs, measured
  over the whole split (as the study is: its 1,437 examples are fewer than the default
  8,192) or over 512 examples in chunks of 32: the 256 of highest loss and 256 others.

  The strata are picked by the losses of the epoch before a measurement; at epoch 10, at
  the initial LR and B = 8, they change so fast that they pick the strata poorly (B_simple
  0.53× the exact value in a run compiled with XLA's optimizations): the strata are
  checked at the three later checkpoints, where the losses have settled."""
  from lr_study.runner import run_study  # pylint: disable=g-import-not-at-top
  from experiments import digits_study  # pylint: disable=g-import-not-at-top
  config = digits_study.get_config('decay')
  config.seeds = (0,)
  config.checkpoint_every_epochs, config.checkpoints_to_keep = 10, 4
  if request.param:
    config.gradient_noise_batch_size, config.gradient_noise_examples = 32, request.param
  workdir = str(tmp_path_factory.mktemp('decay'))
  run_study(config, workdir)
  return config, os.path.join(workdir, 'decay', 'seed_0')


def _exact_at_checkpoints(config, run_dir):
  """{update: (B_simple, |G|², tr(Σ))} exactly, from per-example data-loss gradients
  over the whole training split at each checkpoint's parameters."""
  from lr_study.data.in_memory import normalize  # pylint: disable=g-import-not-at-top
  from lr_study.data.sources import load_dataset_arrays  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from lr_study.training.setup import prepare_run  # pylint: disable=g-import-not-at-top
  from lr_study.training.step import cross_entropy_and_accuracy  # pylint: disable=g-import-not-at-top
  from lr_study.study import resolve_variant  # pylint: disable=g-import-not-at-top
  config = resolve_variant(config, 'decay')
  setup = prepare_run(config)
  arrays = load_dataset_arrays(config.dataset)
  x = normalize(arrays.train.images, setup.spec.mean, setup.spec.std)
  y = jnp.asarray(arrays.train.labels, jnp.int32)

  def loss(params, xi, yi):
    logits = setup.model.apply({'params': params}, xi[None], train=False)
    return cross_entropy_and_accuracy(logits, yi[None])[0][0]

  exact = {}
  for step in sorted(int(s) for s in os.listdir(os.path.join(run_dir, 'checkpoints'))):
    path = os.path.join(run_dir, 'checkpoints', str(step), 'state')
    params = ocp.StandardCheckpointer().restore(path)['params']
    g_sq, trace = _exact(jax.vmap(jax.grad(loss), (None, 0, 0))(params, x, y))
    exact[step] = (trace / g_sq, g_sq, trace)
  return exact


@pytest.mark.slow
def test_the_logged_noise_scale_matches_exact_per_example_values_on_the_digits_mlp(decay_run):
  config, run_dir = decay_run
  exact = _exact_at_checkpoints(config, run_dir)
  assert sorted(exact) == [1790, 3580, 5370, 7160]
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    logged = {row['update']: row for row in map(json.loads, f)}
  strata = config.gradient_noise_examples < 1437
  for update, (b_simple, g_sq, trace) in exact.items():
    if strata and update == 1790:
      continue
    row = logged[update]
    assert 1 / 1.5 < row['gradient_noise_scale'] / b_simple < 1.5, (update, row, b_simple)
    assert 1 / 2 < row['grad_norm_sq'] / g_sq < 2, (update, row, g_sq)
    assert 1 / 2 < row['trace_sigma'] / trace < 2, (update, row, trace)


@pytest.mark.multidevice
@pytest.mark.parametrize('hard_per_device', [0, 1])
def test_the_pmapped_measurement_sums_the_chunk_gradients_of_the_order_on_every_device(
    hard_per_device):
  """``measure_fn`` on the test's devices against the chunks of the order cut in turn,
  each chunk's gradient taken directly: the examples of highest ``example_loss`` first,
  in the order's order, then the others (with no hard stratum, ``perm[:C·b]``)."""
  from lr_study.data.in_memory import DeviceData, normalize  # pylint: disable=g-import-not-at-top
  from lr_study.models import build_model  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import devices  # pylint: disable=g-import-not-at-top
  from lr_study.training.step import cross_entropy_and_accuracy  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (100, 4, 4, 1), dtype=np.uint8)
  labels = rng.integers(0, 3, 100).astype(np.int32)
  mean, std, perm = np.float32([0.5]), np.float32([0.25]), rng.permutation(100).astype(np.int32)
  example_loss = rng.random(100).astype(np.float32)
  model = build_model({'name': 'mlp', 'widths': (8,)}, 3, ghost_batch_size=0)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 1)), train=False)['params']
  chunk, easy_per_device, local = 3, 2, jax.local_device_count()
  split = devices.replicate(DeviceData(images, labels, mean, std, np.int32(0), perm))
  split = split.replace(local_device=devices.shard(np.arange(local, dtype=np.int32)))
  out = [float(v[0]) for v in gradient_noise.measure_fn(model, chunk, hard_per_device,
                                                        easy_per_device)(
      devices.replicate(params), devices.replicate({}), split, devices.replicate(example_loss))]

  num_hard = hard_per_device * local * chunk
  hard = np.isin(perm, np.argsort(-example_loss)[:num_hard])
  order = np.concatenate([perm[hard], perm[~hard]])
  loss = lambda p, xc, yc: cross_entropy_and_accuracy(model.apply({'params': p}, xc, train=False),
                                                      yc)[0].mean()

  def stratum(examples):
    chunks = len(examples) // chunk
    x = normalize(images[examples], mean, std).reshape(chunks, chunk, 4, 4, 1)
    grads = jax.vmap(jax.grad(loss), (None, 0, 0))(params, x, labels[examples].reshape(chunks, chunk))
    mean_grad = jax.tree.map(lambda g: g.mean(0), grads)
    return mean_grad, [np.mean([float(sq_norm(jax.tree.map(lambda g: g[j], grads)))
                                for j in range(chunks)]), float(sq_norm(mean_grad))]

  easy_mean, easy = stratum(order[num_hard:num_hard + easy_per_device * local * chunk])
  assert out[:2] == pytest.approx(easy, rel=1e-5)
  if hard_per_device:
    hard_mean, expected = stratum(order[:num_hard])
    cross = sum(float(jnp.vdot(h, e)) for h, e in zip(jax.tree.leaves(hard_mean),
                                                       jax.tree.leaves(easy_mean)))
    assert out[2:] == pytest.approx([*expected, cross], rel=1e-5)
  else:
    assert out[2:] == [0.0, 0.0, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['in_memory', 'streaming'])
def test_the_measurement_agrees_with_exact_values_whether_the_split_is_resident_or_streamed(
    mode, digits_data_dir):
  """The digits MLP at its initial parameters: the meter of either feed against the exact
  per-example values over the 1,437 training examples."""
  from conftest import digits_run_config  # pylint: disable=g-import-not-at-top
  from lr_study.data.feeds import load_feed  # pylint: disable=g-import-not-at-top
  from lr_study.data.in_memory import normalize  # pylint: disable=g-import-not-at-top
  from lr_study.data.sources import load_dataset_arrays  # pylint: disable=g-import-not-at-top
  from lr_study.runtime import devices  # pylint: disable=g-import-not-at-top
  from lr_study.training.setup import prepare_run  # pylint: disable=g-import-not-at-top
  from lr_study.training.step import cross_entropy_and_accuracy, init_train_state  # pylint: disable=g-import-not-at-top
  config = digits_run_config(digits_data_dir)
  config.dataset.mode = mode
  setup = prepare_run(config)
  state = init_train_state(setup.model, setup.tx, 0, setup.spec.image_shape)
  logged = gradient_noise.meter(load_feed(config.dataset, setup.spec), setup.model, 16, 0)(
      devices.replicate(state), 0, 1)

  arrays = load_dataset_arrays(digits_run_config(digits_data_dir).dataset)
  x = normalize(arrays.train.images, setup.spec.mean, setup.spec.std)
  loss = lambda p, xi, yi: cross_entropy_and_accuracy(
      setup.model.apply({'params': p}, xi[None], train=False), yi[None])[0][0]
  g_sq, trace = _exact(jax.vmap(jax.grad(loss), (None, 0, 0))(
      state.params, x, jnp.asarray(arrays.train.labels, jnp.int32)))
  assert logged['grad_norm_sq'] == pytest.approx(g_sq, rel=0.05)
  assert logged['trace_sigma'] == pytest.approx(trace, rel=0.15)
  assert logged['gradient_noise_scale'] == pytest.approx(trace / g_sq, rel=0.2)
