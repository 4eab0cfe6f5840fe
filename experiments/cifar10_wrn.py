r"""Decay the LR or increase the batch: the paper's CIFAR-10 study with a 16-4 wide ResNet.

    python launch.py --config=experiments/cifar10_wrn.py:decay --workdir=runs/cifar10_wrn

(``:hybrid``, ``:increase``, ``:increased_initial_lr``, ``:increased_momentum``, several
comma-separated, or no suffix for all five; ``--dry_run`` prints the plans only.)

Smith, Kindermans, Ying & Le, "Don't Decay the Learning Rate, Increase the Batch Size"
(ICLR 2018), §5.1 and §5.2: a 16-4 wide ResNet on CIFAR-10 (N = 50,000, with the usual
flip-and-crop augmentation), SGD with momentum 0.9, weight decay 5e-4, ghost batch norm
over 128 examples, 200 epochs. Every variant divides the noise scale
g ≈ εN/(B(1 − m)) by 5 at epochs 60, 120 and 160:

* ``decay``: ε = 0.1, B = 128 throughout; ε ÷ 5 at each step (78,000 updates).
* ``hybrid``: ε = 0.1; B ×5 at epoch 60 to 640, its maximum, then ε ÷ 5 at 120 and
  160 (34,320 updates).
* ``increase``: ε = 0.1 throughout; B = 128 → 640 → 3200 → 16000 (28,800 updates).

§5.2 keeps the same g with fewer updates, starting from a larger batch:

* ``increased_initial_lr``: ε = 0.5, B0 = 640 (B ∝ ε): 640 → 3200 → 16000 (5,820 updates).
* ``increased_momentum``: ε = 0.5, m = 0.98, B0 = 3200 (B ∝ ε/(1 − m)): 3200 → 16000
  (1,320 updates).

Both §5.2 variants are ``hybrid`` schedules with ``max_batch_size = 16000``, the largest
batch of ``increase`` (no larger than the 50,000 training examples): a step that would
take B past it keeps B = 16000 and divides ε by 5 instead, so g follows ``decay``'s at
every epoch (the last step of ``increased_initial_lr``, the last two of
``increased_momentum``). That cap is this study's choice, stated here; epochs are ⌊N/B⌋
updates with the remainder dropped (``lr_study.plan``).

``max_per_device_batch = 3200``: on one device the batch of 16,000 runs as 5 accumulated
micro-batches of 3,200. Ghost batches of 128 are consecutive slices of each global
micro-batch on any number of devices (``lr_study.models.ghost_batch_norm``): on 8 devices
the batch of 640 is 80 examples per device, its 5 ghost batches spanning devices.
"""

from __future__ import annotations

import ml_collections

from lr_study import config as schema
from lr_study.schedules import noise_scale as ns
from lr_study.study import decay_vs_batch_variants, select_variant

NUM_EPOCHS = 200
STEPS = (60, 120, 160)
FACTOR = 5
LR = 0.1
B0 = 128
MOMENTUM = 0.9
MAX_BATCH = 16000  # <= N = 50,000; past it the hybrid rule decays the LR instead
# §5.2: ε = 0.5 with B ∝ ε (640), and with m = 0.98 as well, B ∝ 1/(1 − m) (3200).
LARGE_LR, LARGE_MOMENTUM = 0.5, 0.98
B_LARGE_LR = round(ns.scale_batch_with_lr(B0, LR, LARGE_LR))
B_LARGE_MOMENTUM = round(ns.scale_batch_with_momentum(B_LARGE_LR, MOMENTUM, LARGE_MOMENTUM))


def _increase(batch_size: int, max_batch_size: int) -> ml_collections.ConfigDict:
  """B ×5 at each step up to ``max_batch_size``; past it ε ÷ 5 instead (``hybrid``)."""
  return ml_collections.ConfigDict(dict(name='hybrid', batch_size=batch_size, boundaries=STEPS,
                                        factor=FACTOR, max_batch_size=max_batch_size))


def _constant_lr(learning_rate: float) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(name='constant', init_value=learning_rate))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = schema.get_config()
  config.seeds = (0,)
  config.dataset = schema.dataset_defaults('cifar10', augment=True)
  config.model = ml_collections.ConfigDict(dict(name='wide_resnet', depth=16, width=4))
  config.optimizer = ml_collections.ConfigDict(dict(name='momentum', momentum=MOMENTUM,
                                                    weight_decay=5e-4))
  config.learning_rate = LR
  config.batch_size = B0
  config.variants = decay_vs_batch_variants(config, STEPS, FACTOR, hybrid_factor=FACTOR)
  with config.variants.ignore_type():
    config.variants.increased_initial_lr = dict(
        lr_schedule=_constant_lr(LARGE_LR), batch_schedule=_increase(B_LARGE_LR, MAX_BATCH))
    config.variants.increased_momentum = dict(
        lr_schedule=_constant_lr(LARGE_LR),
        batch_schedule=_increase(B_LARGE_MOMENTUM, MAX_BATCH),
        optimizer=dict(name='momentum', momentum=LARGE_MOMENTUM, weight_decay=5e-4))
  config.num_epochs = NUM_EPOCHS
  config.max_per_device_batch = 3200
  config.ghost_batch_size = 128
  config.train_log_every_updates = 100
  config.checkpoint_every_epochs = 5
  return select_variant(config, arg)
