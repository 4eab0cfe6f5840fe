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
* ``increase``: ε = 0.05 throughout, B = 8 → 32 → 128 → 352 (2,380 updates).

B0 = 8 keeps the batches below N = 1437, so the schedules really differ in updates.

Equal epochs. An epoch at batch B is ⌊N/B⌋ updates, its last N mod B examples dropped
(``lr_study.plan``). A fourth ×4 would make ``increase``'s last batch 512: 2 updates per
epoch, dropping 413 of the 1437 examples (28.7%) every epoch, so that it would see 8% fewer
examples than ``decay``, and its exact noise scale g = ε(N/B − 1)/(1 − m) would be 0.90
against ``decay``'s 1.40 (g ≈ εN/(B(1 − m)) holds only for B ≪ N). Its last batch is
``LAST_BATCH`` = 352 instead, the largest multiple of 8 (so that it splits over 1, 2, 4 or
8 devices) at most N/4: 4 updates per epoch, dropping 29 examples (2.0%) as B = 32 and 128
do, g = 1.54. Of the multiples of 8 that drop at most 5% of an epoch (the plan's warning),
352 gives the g nearest ``decay``'s; the noise-matched batch (``match_noise`` with
``exact=True``, B = 379) would drop 300 (21%). The paper compares its schedules at equal
epochs and equal g, and its own CIFAR-10 ``increase`` (B = 16,000 of N = 50,000) drops 4%
of each epoch. The three variants see 57,280, 56,560 and 56,560 examples: within 1.3%.
"""

import ml_collections

from lr_study import config as schema
from lr_study.study import decay_vs_batch_variants, select_variant

EPOCHS = 40
STEPS = (10, 20, 30)
FACTOR = 4
LR = 0.05
B0 = 8
N = 1437  # training examples: scikit-learn's 1797 digits less the 360 held out for test
LAST_BATCH = N // 4 // 8 * 8  # increase's last batch, 352: 4 updates per epoch, 29 dropped


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
  increase = config.variants.increase.batch_schedule
  with increase.ignore_type():  # ×4, ×4, then ×352/128 = 2.75
    increase.factor = (FACTOR, FACTOR, LAST_BATCH / (B0 * FACTOR**2))
  config.num_epochs = EPOCHS
  config.checkpoint_every_epochs = 0
  return select_variant(config, arg)
