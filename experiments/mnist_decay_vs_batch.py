r"""Decaying LR vs increasing batch size on real MNIST with an MLP, sized for a CPU.

    python launch.py --config=experiments/mnist_decay_vs_batch.py --config.dataset.download=True

(offline: ``--config.dataset.manual_dir=DIR`` with the four official MNIST files instead
of the download.)

Smith, Kindermans, Ying & Le (ICLR 2018), Figure 2, on MNIST: every variant shares all
hyperparameters and the 30 epochs, and divides the noise scale g ≈ εN/(B(1 − m)) by 4
at epochs 10 and 20:

* ``decay``: B = 64, ε divided by 4 at each step (843 updates per epoch);
* ``hybrid``: B = 64 → 256 at epoch 10 (the maximum), then ε divided by 4 at epoch 20;
* ``increase``: ε held, B = 64 → 256 → 1024;
* ``noise_adaptive``: ε held, B set at each evaluation to the measured gradient noise
  scale B_simple (McCandlish et al. 2018), in steps of 64, from 64 up to 1024
  (``lr_study.schedules.batch_dynamic``): the batch follows the data, not a hand-set
  schedule.

A batch ramp, as large-model training uses, is here too: ε held, B from 64 to 1024 in
steps of 64, linearly over the first 30% of the examples, changing at any update
(``lr_study.schedules.batch_ramp``): ``--config=experiments/mnist_decay_vs_batch.py:ramp``.

Raschka's STAT 453 batch-size experiment is here too, at a constant LR, for the
contrast it teaches (equal epochs, 843 vs 52 updates per epoch):
``--config=experiments/mnist_decay_vs_batch.py:raschka_b64,raschka_b1024``.

The data follow Raschka's MNIST setup: 54,000 training images and 6,000 held out for
validation (the last 6,000 of a fixed shuffle of the 60,000), the 10,000 test images
for the reported accuracy. TFDS prepares them into ``data_dir`` on first use.
"""

import ml_collections

from lr_study import config as schema
from lr_study.study import decay_vs_batch_variants, select_variant

EPOCHS = 30
STEPS = (10, 20)
FACTOR = 4
LR = 0.05
B0 = 64


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = schema.get_config()
  config.seeds = (0, 1, 2)
  config.dataset = schema.dataset_defaults('mnist', validation_size=6000)
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=(256, 256),
                                                batch_norm=False, dropout=0.0))
  config.optimizer = ml_collections.ConfigDict(dict(name='momentum', momentum=0.9,
                                                    weight_decay=0.0))
  config.learning_rate = LR
  config.batch_size = B0
  config.variants = decay_vs_batch_variants(config, STEPS, FACTOR, hybrid_factor=FACTOR)
  with config.variants.ignore_type():
    for batch_size in (64, 1024):  # Raschka's contrast, at the constant LR
      config.variants[f'raschka_b{batch_size}'] = dict(
          lr_schedule=dict(name='constant', init_value=config.get_ref('learning_rate').identity()),
          batch_schedule=dict(name='constant', batch_size=batch_size))
    config.variants.noise_adaptive = dict(
        lr_schedule=dict(name='constant', init_value=config.get_ref('learning_rate').identity()),
        batch_schedule=dict(name='noise_adaptive', batch_size=config.get_ref('batch_size').identity(),
                            max_batch_size=1024, multiple=64),
        gradient_noise_every_epochs=1)
    config.variants.ramp = dict(
        lr_schedule=dict(name='constant', init_value=config.get_ref('learning_rate').identity()),
        batch_schedule=dict(name='linear_ramp', batch_size=config.get_ref('batch_size').identity(),
                            final_batch_size=1024, over=0.3, multiple=64))
  config.num_epochs = EPOCHS
  config.checkpoint_every_epochs = 5
  # B_simple every 5 epochs (every epoch for noise_adaptive, which acts on it), over the
  # schema's 8,192 examples in chunks of 128: the 4,096 of highest loss and 4,096 others.
  config.gradient_noise_every_epochs = 5
  return select_variant(config, arg, default=('decay', 'hybrid', 'increase', 'noise_adaptive'))
