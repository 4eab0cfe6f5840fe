r"""The default study: decaying LR vs hybrid vs increasing batch size, on embedded digits.

    python launch.py --config=experiments/digits_study.py --workdir=runs/digits

(``python launch.py`` with no flags runs the same.) One variant alone:
``--config=experiments/digits_study.py:increase``.

Smith, Kindermans, Ying & Le (ICLR 2018), Figure 2, scaled down to scikit-learn's
handwritten digits (1437 training images of 8x8, shipped inside scikit-learn and
prepared as a TFDS dataset on first use) so that it runs in under a minute on a
laptop CPU. All variants share every hyperparameter (an MLP 64-128-128-10, SGD with
momentum 0.9, weight decay 5e-4) and the 40 epochs; they differ only in how the noise
scale g ≈ εN/(B(1 − m)) falls by 4× at each of epochs 10, 20 and 30:

* ``decay``: ε = 0.05 divided by 4 at each step, B = 8 throughout (7,160 updates);
* ``hybrid``: ε = 0.05 held while B goes 8 → 32 (its maximum), then ε divided by 4
  (3,110 updates);
* ``increase``: ε = 0.05 throughout, B = 8 → 32 → 128 → 512 (2,360 updates).

B0 = 8 keeps every batch well below N = 1437, so the schedules really differ in updates.
"""

import ml_collections

from lr_study import config as schema
from lr_study.study import decay_vs_batch_variants, select_variant

EPOCHS = 40
STEPS = (10, 20, 30)
FACTOR = 4
LR = 0.05
B0 = 8


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = schema.get_config()
  config.seeds = (0, 1, 2)
  config.dataset = schema.dataset_defaults('digits', eval_batch_size=360)
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=(128, 128),
                                                batch_norm=False, dropout=0.0))
  config.optimizer = ml_collections.ConfigDict(dict(name='momentum', momentum=0.9,
                                                    weight_decay=5e-4))
  config.learning_rate = LR
  config.batch_size = B0
  config.variants = decay_vs_batch_variants(config, STEPS, FACTOR, hybrid_factor=FACTOR)
  config.num_epochs = EPOCHS
  config.checkpoint_every_epochs = 0
  return select_variant(config, arg)
