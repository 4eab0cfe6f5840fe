"""The SGD noise scale and the rules that trade learning rate, batch size and momentum.

Smith, Kindermans, Ying & Le, "Don't Decay the Learning Rate, Increase the Batch Size"
(ICLR 2018). §2 models SGD as a stochastic differential equation whose random
fluctuations have the scale ``g = ε(N/B − 1) ≈ εN/B`` (learning rate ε, training-set size
N, batch size B); §4 shows that momentum m multiplies the effective learning rate by
``1/(1 − m)``, so that

    g = ε (N/B − 1) / (1 − m)   ≈   ε N / (B (1 − m))      (the approximation for B ≪ N).

Decaying ε by a factor and raising B by the same factor reduce the approximate g alike;
that is the paper's thesis. §5.2 keeps g fixed while cutting the number of updates:

* raise ε and B together, ``B ∝ ε`` (:func:`scale_batch_with_lr`);
* raise the momentum and ``B ∝ 1/(1 − m)`` (:func:`scale_batch_with_momentum`).

The conversion helpers (:func:`matched_batch_size`, :func:`capped_lr_multiplier`) turn a
learning-rate decay schedule into a batch-size schedule with the same g; the batch-size
schedule ``match_noise`` (``lr_study.schedules.batch``) is built on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lr_study.errors import ConfigError

FORMULA = 'g = ε(N/B − 1)/(1 − m)'  # what noise_scale returns
APPROXIMATE_FORMULA = 'g ≈ εN/(B(1 − m))'  # what it returns with approximate=True


def _check(requirement: str, ok: Any, value: Any) -> None:
  """ConfigError ``'<requirement>, got <value>'`` unless ``ok`` holds everywhere."""
  if not np.all(ok):
    raise ConfigError(f'{requirement}, got {value}')


def noise_scale(learning_rate: Any, batch_size: Any, num_examples: Any, momentum: Any = 0.0,
                approximate: bool = False) -> Any:
  """The noise scale of SGD (Smith et al. 2018, §2 and §4; used throughout §5.2).

  ``g = ε (N/B − 1) / (1 − m)``, or with ``approximate=True`` ``g ≈ ε N / (B (1 − m))``.
  Arguments broadcast (NumPy); a float comes back for scalar arguments.
  """
  lr, b, n, m = (np.asarray(x, dtype=float) for x in (learning_rate, batch_size, num_examples,
                                                       momentum))
  _check('learning_rate must be >= 0', lr >= 0, learning_rate)
  _check('batch_size must be > 0', b > 0, batch_size)
  _check('num_examples must be > 0', n > 0, num_examples)
  _check('momentum must be in [0, 1)', (m >= 0) & (m < 1), momentum)
  g = lr * (n / b - (0.0 if approximate else 1.0)) / (1.0 - m)
  return float(g) if np.ndim(g) == 0 else g


def scale_batch_with_lr(batch_size: float, learning_rate: float, new_learning_rate: float) -> float:
  """§5.2: raise ε and B together, ``B' = B · ε'/ε``, keeping ``g ≈ εN/(B(1 − m))``.

  The paper's "increased initial learning rate": ε 0.1 → 0.5 takes B 128 → 640.
  """
  _check('learning_rate must be > 0', learning_rate > 0, learning_rate)
  _check('new_learning_rate must be > 0', new_learning_rate > 0, new_learning_rate)
  return batch_size * new_learning_rate / learning_rate


def scale_batch_with_momentum(batch_size: float, momentum: float, new_momentum: float) -> float:
  """§5.2: raise the momentum and ``B' = B · (1 − m)/(1 − m')``, keeping the approximate g.

  The paper's "increased momentum coefficient": m 0.9 → 0.98 multiplies B by 5, so with
  ε 0.1 → 0.5 as well, B 128 → 3200.
  """
  for name, m in (('momentum', momentum), ('new_momentum', new_momentum)):
    _check(f'{name} must be in [0, 1)', 0 <= m < 1, m)
  return batch_size * (1.0 - momentum) / (1.0 - new_momentum)


def matched_batch_size(reference_lr: Any, learning_rate: float, batch_size: float,
                       num_examples: float | None = None, approximate: bool = True) -> Any:
  """The batch size at learning rate ε whose g equals that of ``reference_lr`` at ``batch_size``.

  With the same momentum on both sides, ``g(ε, B') = g(ε_ref, B)`` gives

      approximate:  B' = B · ε / ε_ref                       (∞ where ε_ref = 0)
      exact:        B' = N / (1 + (ε_ref/ε)(N/B − 1))        (→ N as ε_ref → 0; needs N)

  This converts an LR decay schedule ε_ref(e) at batch B into the batch-size schedule
  B'(e) at the constant LR ε = ε_ref(0). The result is a float: rounding it to a whole
  batch is the caller's (it moves g by at most the rounding's relative size).
  """
  ref = np.asarray(reference_lr, dtype=float)
  _check('learning_rate must be > 0', learning_rate > 0, learning_rate)
  _check('reference_lr must be >= 0', ref >= 0, reference_lr)
  if approximate:
    with np.errstate(divide='ignore'):
      out = np.where(ref > 0, batch_size * learning_rate / np.where(ref > 0, ref, 1.0), np.inf)
  else:
    if num_examples is None:
      raise ConfigError('exact=True needs num_examples, the training-set size')
    out = num_examples / (1.0 + ref / learning_rate * (num_examples / batch_size - 1.0))
  return float(out) if np.ndim(out) == 0 else out


def capped_lr_multiplier(target_batch_size: float, max_batch_size: float,
                         num_examples: float | None = None, approximate: bool = True) -> float:
  """The LR factor that, at ``max_batch_size``, gives the g of ``target_batch_size``.

  Past a maximum batch size the rest of the noise reduction is taken as learning-rate
  decay (the paper's "hybrid", §5.1): ``g(ε·k, B_max) = g(ε, B_target)`` gives

      approximate:  k = B_max / B_target
      exact:        k = (N/B_target − 1) / (N/B_max − 1)     (needs N > B_max)
  """
  _check('max_batch_size must be > 0', max_batch_size > 0, max_batch_size)
  if approximate:
    return float(max_batch_size / target_batch_size)
  if num_examples is None:
    raise ConfigError('exact=True needs num_examples, the training-set size')
  _check(f'max_batch_size must be < num_examples {num_examples}',
         max_batch_size < num_examples, max_batch_size)
  return float((num_examples / target_batch_size - 1.0) / (num_examples / max_batch_size - 1.0))
