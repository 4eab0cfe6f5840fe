"""Batch-size schedules B(epoch) and their registry.

A batch-size schedule gives, for each whole 0-based epoch ``e``, the global batch size
``B(e)`` and an LR multiplier ``k(e)`` (1 except where a batch increase past
``max_batch_size`` is taken as learning-rate decay instead). The batch size only changes
between epochs (except in a ramp, below): each epoch at batch B is ⌊N/B⌋ updates
(``lr_study.plan``).

After Smith, Kindermans, Ying & Le, "Don't Decay the Learning Rate, Increase the Batch
Size" (ICLR 2018): where a schedule would divide the LR by a factor, multiply B by it
instead; the noise scale ``g ≈ εN/(B(1 − m))`` (``lr_study.schedules.noise_scale``) falls alike.

Registered schedules (``config.batch_schedule.name``; each builder's docstring states its
rule): ``constant``, ``multistep`` (the paper's "increase"), ``hybrid`` (the paper's
"hybrid": multistep up to a cap, then LR decay), ``geometric``, ``match_noise`` (the
batch schedule with the noise scale of any LR decay schedule), and the dynamic ones in
``lr_study.schedules.batch_dynamic``: ``increase_on_plateau`` and ``noise_adaptive``,
which the training loop applies at evaluations by re-planning the remaining epochs
(``plan.with_batch_size_from``), and the ramps in ``lr_study.schedules.batch_ramp``:
``linear_ramp`` and ``geometric_ramp``, which change B at any update.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any, Callable, Literal, Mapping, Sequence

import ml_collections
import numpy as np

from lr_study.schedules import noise_scale as ns
from lr_study.errors import ConfigError
from lr_study import checks, registry
from lr_study.schedules.base import LRSchedule, build_lr_schedule

Step = tuple[int, float]  # (global batch size, LR multiplier) of one epoch


@dataclasses.dataclass(frozen=True)
class BatchSchedule:
  """A batch-size schedule over whole 0-based epochs.

  Attributes:
    name: the registry name it was built from.
    fn: ``epoch -> (batch size, LR multiplier)`` for a whole epoch ``>= 0``.
    init_value: B(0).
    boundaries: the epochs at which a stepped schedule changes (the plan checks that
      they lie inside the training); empty where the change epochs follow from a formula.
    max_batch_size: the cap, or None.
    dynamic: None, or the rule by which the training loop changes B at evaluations
      (``'increase_on_plateau'``, ``'noise_adaptive'``).
    reachable: for a dynamic schedule, every batch size it can reach (the plan checks
      each fits the devices before training).
    ramp: for a batch ramp (``lr_study.schedules.batch_ramp``), the batch of the update
      after a fraction ``x`` of the run's examples; ``fn`` then gives the epochs after it.
    params: the parameters it was built with, defaults filled in.
  """

  name: str
  fn: Callable[[int], Step]
  init_value: int
  boundaries: tuple[int, ...] = ()
  max_batch_size: int | None = None
  dynamic: Literal['increase_on_plateau', 'noise_adaptive'] | None = None
  reachable: tuple[int, ...] = ()
  ramp: Callable[[float], int] | None = None
  params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __call__(self, epoch: int) -> int:
    """B(epoch); a fractional epoch counts as the whole epoch it lies in."""
    return self.fn(_whole_epoch(epoch))[0]

  def lr_multiplier(self, epoch: int) -> float:
    """k(epoch): 1 except past ``max_batch_size`` in ``hybrid``, ``geometric``, ``match_noise``."""
    return self.fn(_whole_epoch(epoch))[1]


def _whole_epoch(epoch: Any) -> int:
  e = int(math.floor(epoch))
  if e < 0:
    raise ValueError(f'epoch must be >= 0, got {epoch}')
  return e


# --- parameter checks (messages start with the parameter's name; the registry adds the prefix)

def _boundaries(boundaries: Sequence[Any]) -> tuple[int, ...]:
  bounds = tuple(boundaries) if isinstance(boundaries, (list, tuple)) else (boundaries,)
  checks.integers('boundaries', bounds, 1)
  if any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:])):
    raise ConfigError(f'boundaries must increase, got {bounds}')
  return tuple(int(b) for b in bounds)


def _factors(factor: float | Sequence[float], num: int) -> tuple[float, ...]:
  fs = tuple(factor) if isinstance(factor, (list, tuple)) else (factor,) * num
  if len(fs) != num:
    raise ConfigError(f'factor {fs} does not match the {num} boundaries')
  return tuple(checks.positive('factor', f) for f in fs)


def _cap(max_batch_size: Any, batch_size: int, multiple: int = 1) -> int | None:
  if max_batch_size is None:
    return None
  cap = checks.integer('max_batch_size', max_batch_size, 1)
  if cap < batch_size:
    raise ConfigError(f'max_batch_size must be >= batch_size {batch_size}, got {cap}')
  if cap % multiple:
    raise ConfigError(f'max_batch_size must be a multiple of multiple={multiple}, got {cap}')
  return cap


def _round_to_multiple(batch_size: float, multiple: int) -> int:
  """The nearest multiple of ``multiple`` (halves up), at least ``multiple``."""
  return max(multiple, int(math.floor(batch_size / multiple + 0.5)) * multiple)


def _realize(target: float, cap: int | None, multiple: int, num_examples: int | None = None,
             approximate: bool = True) -> Step:
  """The batch size and LR multiplier that give the noise scale of batch ``target``.

  Below the cap: ``target`` rounded to a multiple, LR multiplier 1. Above it: the cap,
  and the LR multiplier that makes up the difference (``noise_scale.capped_lr_multiplier``).
  """
  if cap is not None and target > cap:
    return cap, ns.capped_lr_multiplier(target, cap, num_examples, approximate)
  if math.isinf(target):
    raise ConfigError('max_batch_size is needed: the batch size grows without bound')
  return _round_to_multiple(target, multiple), 1.0


# --- the registry

BATCH_SCHEDULES: dict[str, Callable[..., BatchSchedule]] = {}


def register(name: str) -> Callable[[Callable[..., BatchSchedule]], Callable[..., BatchSchedule]]:
  return registry.register(BATCH_SCHEDULES, name)


def build_batch_schedule(config: ml_collections.ConfigDict | Mapping[str, Any],
                         prefix: str = 'batch_schedule',
                         num_examples: int | None = None) -> BatchSchedule:
  """Builds the batch-size schedule named by ``config.name`` from the rest of ``config``.

  ``num_examples`` (the training-set size N, never in ``config``) reaches the schedules
  that need it (``match_noise`` with ``exact=True``); ``lr_study.plan.build_plan`` passes it.

  Raises:
    ConfigError: one line naming the bad name or parameter, e.g.
      ``batch_schedule.boundaries must increase, got (60, 30)``.
  """
  return registry.build(BATCH_SCHEDULES, config, prefix, 'batch schedule',
                        num_examples=num_examples).value


@register('constant')
def constant(batch_size: int) -> BatchSchedule:
  """B(e) = B0."""
  b0 = checks.integer('batch_size', batch_size, 1)
  return BatchSchedule('constant', lambda e: (b0, 1.0), init_value=b0,
                       params={'batch_size': b0})


def _stepped(name: str, batch_size: int, boundaries: Sequence[int],
             factor: float | Sequence[float], max_batch_size: int | None) -> BatchSchedule:
  b0 = checks.integer('batch_size', batch_size, 1)
  bounds = _boundaries(boundaries)
  fs = _factors(factor, len(bounds))
  cap = _cap(max_batch_size, b0)
  targets = b0 * np.concatenate([[1.0], np.cumprod(fs)])
  steps = [_realize(float(t), cap, multiple=1) for t in targets]
  return BatchSchedule(name, lambda e: steps[bisect.bisect_right(bounds, e)], init_value=b0,
                       boundaries=bounds, max_batch_size=cap,
                       params={'batch_size': b0, 'boundaries': bounds, 'factor': fs,
                               'max_batch_size': cap})


@register('multistep')
def multistep(batch_size: int, boundaries: Sequence[int],
              factor: float | Sequence[float] = 5.0) -> BatchSchedule:
  """B(e) = B0 · Π_{i: e ≥ b_i} f_i, rounded to whole examples.

  Smith et al. 2018, §5.1 ("increasing batch size"): ``batch_size=128,
  boundaries=(60, 120, 160), factor=5`` gives 128 → 640 → 3200 → 16000.
  """
  return _stepped('multistep', batch_size, boundaries, factor, None)


@register('hybrid')
def hybrid(batch_size: int, boundaries: Sequence[int], max_batch_size: int,
           factor: float | Sequence[float] = 5.0) -> BatchSchedule:
  """``multistep`` up to ``max_batch_size``; past it the LR is multiplied by B_max/B_target.

  Smith et al. 2018, §5.1 ("hybrid", standing in for a hardware limit on the batch):
  ``batch_size=128, boundaries=(60, 120, 160), factor=5, max_batch_size=640`` raises B to
  640 at epoch 60, then divides the LR by 5 at 120 and at 160.
  """
  if max_batch_size is None:
    raise ConfigError('max_batch_size must be set for hybrid (use multistep for no cap)')
  return _stepped('hybrid', batch_size, boundaries, factor, max_batch_size)


@register('geometric')
def geometric(batch_size: int, growth: float, every: int = 1, max_batch_size: int | None = None,
              multiple: int = 1) -> BatchSchedule:
  """B(e) = B0 · growth^⌊e/every⌋ rounded to a multiple of ``multiple``; capped as ``hybrid``.

  The batch-size counterpart of an exponential LR decay (PyTorch ``ExponentialLR``):
  ``growth = 1/γ`` follows the approximate noise scale of ``η0·γ^e`` at constant LR.
  """
  m = checks.integer('multiple', multiple, 1)
  b0 = checks.integer('batch_size', batch_size, 1)
  if b0 % m:
    raise ConfigError(f'batch_size must be a multiple of multiple={m}, got {b0}')
  g = checks.positive('growth', growth)
  k = checks.integer('every', every, 1)
  cap = _cap(max_batch_size, b0, m)
  return BatchSchedule('geometric', lambda e: _realize(b0 * g ** (e // k), cap, m),
                       init_value=b0, max_batch_size=cap,
                       params={'batch_size': b0, 'growth': g, 'every': k, 'max_batch_size': cap,
                               'multiple': m})


@register('match_noise')
def match_noise(batch_size: int, reference: Mapping[str, Any] | LRSchedule, exact: bool = False,
                max_batch_size: int | None = None, multiple: int = 1,
                num_examples: int | None = None) -> BatchSchedule:
  """The constant-LR batch schedule with the noise scale of the LR schedule ``reference``.

  With ε = ε_ref(0) and the same momentum (Smith et al. 2018, §2 and §5):

      approximate:  B(e) = B0 · ε / ε_ref(e)
      exact:        B(e) = N / (1 + (ε_ref(e)/ε)(N/B0 − 1))

  (``noise_scale.matched_batch_size``), rounded to the nearest multiple of ``multiple``;
  rounding moves g by at most ``multiple/(2B)`` relative. Past ``max_batch_size`` the
  batch holds and the LR multiplier (``noise_scale.capped_lr_multiplier``) matches g
  exactly: the general hybrid. ``reference`` is an LR schedule config (built with
  ``lr_study.schedules.build_lr_schedule``) or an ``LRSchedule``, on the epoch clock, read
  at the start of each epoch.
  """
  m = checks.integer('multiple', multiple, 1)
  b0 = checks.integer('batch_size', batch_size, 1)
  if b0 % m:
    raise ConfigError(f'batch_size must be a multiple of multiple={m}, got {b0}')
  cap = _cap(max_batch_size, b0, m)
  if not isinstance(exact, bool):
    raise ConfigError(f'exact must be True or False, got {exact!r}')
  if exact and num_examples is None:
    raise ConfigError('exact=True needs num_examples, the training-set size')
  ref = reference if isinstance(reference, LRSchedule) else build_lr_schedule(
      reference, prefix='reference')
  if ref.clock != 'epoch' or ref.dynamic is not None:
    raise ConfigError(f'reference must be a fixed epoch-clock LR schedule, got {ref.name!r} '
                      f'(clock {ref.clock!r}, dynamic {ref.dynamic!r})')
  lr0 = float(ref(0.0))
  if not lr0 > 0:
    raise ConfigError(f'reference must start above 0, got {lr0}')

  def fn(e: int) -> Step:
    target = ns.matched_batch_size(float(ref(float(e))), lr0, b0, num_examples,
                                   approximate=not exact)
    return _realize(target, cap, m, num_examples, approximate=not exact)

  return BatchSchedule('match_noise', fn, init_value=b0, max_batch_size=cap,
                       params={'batch_size': b0, 'reference': ref.name, 'exact': exact,
                               'max_batch_size': cap, 'multiple': m,
                               'num_examples': num_examples})
