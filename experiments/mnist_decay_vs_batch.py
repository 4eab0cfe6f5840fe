r"""Decaying LR vs increasing batch size on real MNIST with an MLP, sized for a CPU.

    python launch.py --config=experiments/mnist_decay_vs_batch.py \
        --config.dataset.manual_dir=../shared/data/mnist --workdir=runs/mnist

Smith, Kindermans, Ying & Le (ICLR 2018), Figure 2, on MNIST: every variant shares all
hyperparameters and the 30 epochs, and divides the noise scale g ≈ εN/(B(1 − m)) by 4
at epochs 10 and 20:

* ``decay``: B = 64, ε divided by 4 at each step (843 updates per epoch);
* ``hybrid``: B = 64 → 256 at epoch 10 (the maximum), then ε divided by 4 at epoch 20;
* ``increase``: ε held, B = 64 → 256 → 1024.

Raschka's STAT 453 batch-size experiment is here too, at a constant LR, for the
contrast it teaches (equal epochs, 843 vs 52 updates per epoch):
``--config=experiments/mnist_decay_vs_batch.py:raschka_b64,raschka_b1024``.

The data follow Raschka's MNIST setup: 54,000 training images and 6,000 held out for
validation (the last 6,000 of a fixed shuffle of the 60,000), the 10,000 test images
for the reported accuracy. ``manual_dir`` holds the four official MNIST files; TFDS
prepares them offline into ``data_dir`` on first use (about 20 s).
"""

import ml_collections

from lr_study.study import select_variant

EPOCHS = 30
STEPS = (10, 20)
FACTOR = 4
LR = 0.05
B0 = 64


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seeds = (0, 1, 2)
  config.dataset = ml_collections.ConfigDict(dict(
      name='mnist', data_dir='', manual_dir='', validation_size=6000, mode='in_memory',
      augment=False, eval_batch_size=1000, download=False))
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=(256, 256),
                                                batch_norm=False, dropout=0.0))
  config.optimizer = ml_collections.ConfigDict(dict(name='momentum', momentum=0.9,
                                                    weight_decay=0.0))
  config.lr_schedule = ml_collections.ConfigDict(dict(name='constant', init_value=LR))
  config.batch_schedule = ml_collections.ConfigDict(dict(name='constant', batch_size=B0))
  config.variants = ml_collections.ConfigDict({
      'decay': dict(
          lr_schedule=dict(name='multistep', init_value=LR, boundaries=STEPS,
                           factors=1 / FACTOR)),
      'hybrid': dict(
          batch_schedule=dict(name='hybrid', batch_size=B0, boundaries=STEPS, factor=FACTOR,
                              max_batch_size=B0 * FACTOR)),
      'increase': dict(
          batch_schedule=dict(name='multistep', batch_size=B0, boundaries=STEPS,
                              factor=FACTOR)),
      'raschka_b64': dict(batch_schedule=dict(name='constant', batch_size=64)),
      'raschka_b1024': dict(batch_schedule=dict(name='constant', batch_size=1024)),
  })
  config.num_epochs = EPOCHS
  config.max_per_device_batch = 0
  config.ghost_batch_size = 0
  config.eval_every_epochs = 1
  config.train_log_every_updates = 0
  config.checkpoint_every_epochs = 5
  return select_variant(config, arg, default=('decay', 'hybrid', 'increase'))
