r"""How a batch is split: over processes, devices, micro-batches and ghost batches.

One update takes a global batch of ``B`` examples on ``D = H·L`` devices (``H``
processes of ``L`` local devices each), in ``k`` accumulated micro-batches of ``m``
examples per device, each global micro-batch of ``M`` examples normalised in ``K``
ghost batches of ``g``:

    B = H · B_h = D · P,    P = k · m,    M = D · m = K · g

* process ``h`` takes ``B_h = B / H`` examples of its own order and each device
  ``P = B / D`` of them;
* example ``r`` of micro-batch ``j`` on local device ``d`` sits at position
  ``(j·L + d)·m + r`` of the process's batch (:func:`position_in_batch`): each global
  micro-batch is a consecutive slice, whatever ``D``;
* ``k`` is the smallest divisor of ``P`` with ``m <= max_per_device_batch`` (0: no
  limit) whose ``D·m`` is a whole number of ghosts of ``min(ghost_batch_size, B)``
  (:func:`accumulation_split`);
* ``g`` is ``ghost_batch_size``, or ``m`` for 0, or ``M`` when ``ghost_batch_size >= M``
  (:func:`ghost_layout`).

An evaluation step takes ``E`` examples (``dataset.eval_batch_size``), ``E / D`` on each
device, with no micro-batches; a split of ``N`` examples takes ``⌈⌈N/H⌉ / (E/H)⌉`` steps
on every process, the last padded (:func:`eval_layout`).

Every division is exact or a ``ConfigError`` naming the numbers: nothing is rounded.

>>> split = accumulation_split(16000, 8, max_per_device_batch=1000, ghost_batch_size=128)
>>> split
DeviceSplit(per_device_batch=2000, micro_batch_size=400, accumulation_steps=5)
>>> layout = ghost_layout(8 * split.micro_batch_size, 8, 128)
>>> layout.num_ghosts, layout.local  # 400 per device: ghosts of 128 span devices
(25, False)
>>> position_in_batch(micro=1, device=2, example=3, micro_batch_size=400, num_devices=8)
4003
>>> eval_layout(10000, eval_batch_size=1000, num_devices=8)
EvalLayout(steps=10, num_devices=8, per_device=125)
>>> try:
...   eval_per_device(1000, 16)
... except ConfigError as e:
...   print(e)
dataset.eval_batch_size 1000 does not divide over 16 devices: use a multiple of 16
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from lr_study import checks
from lr_study.errors import ConfigError


def divide_exactly(total: int, parts: int, what: str, unit: str = 'devices') -> int:
  """``total / parts``, or a ``ConfigError`` naming both when it is not whole."""
  if total % parts:
    raise ConfigError(f'{what} {total} does not divide over {parts} {unit}')
  return total // parts


def position_in_batch(micro: Any, device: Any, example: Any, micro_batch_size: int,
                      num_devices: int) -> Any:
  """``(j·D + d)·m + r``: where example ``r`` of micro-batch ``j`` on device ``d`` sits in
  the batch; integers or arrays (NumPy or JAX, broadcast together)."""
  return (micro * num_devices + device) * micro_batch_size + example


@dataclasses.dataclass(frozen=True)
class GhostLayout:
  """How a global micro-batch of ``num_devices × per_device`` examples splits into ghosts.

  Attributes:
    global_micro_batch: ``M``, the examples of one forward pass over all devices.
    num_devices: ``D``.
    ghost_size: ``g``, the examples of each ghost batch (``ghost_batch_size``, or
      ``m`` for 0, or ``M`` when ``ghost_batch_size >= M``).
  """

  global_micro_batch: int
  num_devices: int
  ghost_size: int

  @property
  def per_device(self) -> int:
    """``m = M / D``."""
    return self.global_micro_batch // self.num_devices

  @property
  def num_ghosts(self) -> int:
    """``K = M / g``."""
    return self.global_micro_batch // self.ghost_size

  @property
  def local(self) -> bool:
    """Whether every ghost lies on one device (``g`` divides ``m``): no communication."""
    return self.per_device % self.ghost_size == 0


def ghost_layout(global_micro_batch: int, num_devices: int,
                 ghost_batch_size: int) -> GhostLayout:
  """The ghost batches of a global micro-batch of ``M`` examples spread over ``D`` devices.

  Valid when ``ghost_batch_size`` is 0 (``g = m``), divides ``M`` (consecutive slices of
  ``g``; local when it divides ``m = M / D`` too), or is at least ``M`` (``g = M``).

  Raises:
    ConfigError: a number is not a whole number in range, ``D`` does not divide ``M``,
      or ``ghost_batch_size`` is below ``M`` and does not divide it.
  """
  total = checks.integer('global micro-batch', global_micro_batch, 1)
  devices = checks.integer('num_devices', num_devices, 1)
  ghost = checks.integer('ghost_batch_size', ghost_batch_size, 0)
  per_device = divide_exactly(total, devices, 'global micro-batch')
  if ghost == 0:
    return GhostLayout(total, devices, per_device)
  if ghost >= total:
    return GhostLayout(total, devices, total)
  if total % ghost:
    raise ConfigError(f'ghost_batch_size {ghost} does not divide the micro-batch of {total} '
                      f'examples on {_on_devices(devices, per_device)}')
  return GhostLayout(total, devices, ghost)


def _on_devices(num_devices: int, per_device: int) -> str:
  return '1 device' if num_devices == 1 else f'{num_devices} devices ({per_device} each)'


class DeviceSplit(NamedTuple):
  """One global batch on the devices: ``accumulation_steps · micro_batch_size`` =
  ``per_device_batch`` examples per device."""

  per_device_batch: int
  micro_batch_size: int
  accumulation_steps: int


def accumulation_split(batch_size: int, num_devices: int, max_per_device_batch: int,
                       ghost_batch_size: int, where: str = '') -> DeviceSplit:
  """The split of global batch ``B`` over ``D`` devices with the fewest micro-batches
  that keeps ghost batches whole.

  The per-device batch is ``P = B / D``; the split takes the smallest ``k`` dividing
  ``P`` with ``m = P / k <= max_per_device_batch`` (0: no limit) whose global
  micro-batch ``D·m`` is a whole number of ghosts of ``min(ghost_batch_size, B)``:
  ghost batches of the size one device would use with no limit. ``ghost_batch_size`` 0
  only bounds ``m``.

  Raises:
    ConfigError: one line naming ``B``, ``D``, ``max_per_device_batch`` and
      ``ghost_batch_size``, with a fix, when ``D`` does not divide ``B`` or no split
      exists; ``where`` (the rule and epoch that gave the batch) ends the line.
  """
  try:
    return _fewest_micro_batches(batch_size, num_devices, max_per_device_batch,
                                 ghost_batch_size)
  except ConfigError as e:
    raise ConfigError(f'{e} {where}'.rstrip()) from None


def _fewest_micro_batches(batch_size: int, num_devices: int, max_per_device_batch: int,
                          ghost_batch_size: int) -> DeviceSplit:
  total = checks.integer('batch_size', batch_size, 1)
  devices = checks.integer('num_devices', num_devices, 1)
  limit = checks.integer('max_per_device_batch', max_per_device_batch, 0)
  ghost = checks.integer('ghost_batch_size', ghost_batch_size, 0)
  per_device = divide_exactly(total, devices, 'global batch')
  target = min(ghost, total)

  def keeps_ghosts(micro: int) -> bool:  # D·m is a whole number (>= 1) of ghosts of target
    return ghost == 0 or (devices * micro >= target and devices * micro % target == 0)

  divisors = [k for k in range(1, per_device + 1) if per_device % k == 0]
  fits = [k for k in divisors if not limit or per_device // k <= limit]
  for k in fits:
    if keeps_ghosts(per_device // k):
      return DeviceSplit(per_device, per_device // k, k)
  fixes = [f'a ghost_batch_size dividing {devices * per_device // fits[0]}']
  whole = [per_device // k for k in divisors if keeps_ghosts(per_device // k)]
  if whole:
    fixes.insert(0, f'a max_per_device_batch of at least {min(whole)}')
  raise ConfigError(f'no accumulation split keeps ghost batches of {ghost} whole for global '
                    f'batch {total} on {_on_devices(devices, per_device)} with '
                    f'max_per_device_batch {limit}: use {" or ".join(fixes)}')


def micro_batch_size(per_device_batch: int, accumulation_steps: int) -> int:
  """``m = P / k``, the examples of each of a device's micro-batches."""
  return divide_exactly(per_device_batch, accumulation_steps, 'per-device batch', 'micro-batches')


class EvalLayout(NamedTuple):
  """A split evaluated in ``steps`` batches of ``per_device`` examples on each of this
  process's ``num_devices`` devices."""

  steps: int
  num_devices: int
  per_device: int


def eval_per_device(eval_batch_size: int, num_devices: int) -> int:
  """``E / D``: the examples each of ``D`` devices (all processes') takes per evaluation
  step; the plan's check of ``dataset.eval_batch_size``.

  Raises:
    ConfigError: ``D`` does not divide ``E``.
  """
  if eval_batch_size % num_devices:
    raise ConfigError(f'dataset.eval_batch_size {eval_batch_size} does not divide over '
                      f'{num_devices} devices: use a multiple of {num_devices}')
  return eval_batch_size // num_devices


def eval_layout(num_examples: int, eval_batch_size: int, num_devices: int,
                process_count: int = 1) -> EvalLayout:
  """The evaluation of a split of ``N`` examples over ``H = process_count`` processes of
  ``L = num_devices`` devices: ``E / (H·L)`` examples per device and step, and on every
  process the steps that cover its ``⌈N/H⌉`` examples at most, so the pmapped
  collectives line up."""
  per_device = eval_per_device(eval_batch_size, num_devices * process_count)
  per_process = -(-num_examples // process_count)
  return EvalLayout(-(-per_process // (num_devices * per_device)), num_devices, per_device)
