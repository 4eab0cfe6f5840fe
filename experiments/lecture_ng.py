r"""Andrew Ng's learning-rate decay (C2W2L09), every formula of the lecture on real MNIST.

    python launch.py --config=experiments/lecture_ng.py \
        --config.dataset.manual_dir=../shared/data/mnist --workdir=runs/lecture_ng

One variant alone: ``--config=experiments/lecture_ng.py:inverse_time``; the plans only:
``--dry_run``. Figures from the finished runs:
``python -m analysis.figures --workdir=runs/lecture_ng --out_dir=runs/lecture_ng/figures``.

Mini-batch gradient descent (plain SGD, B = 64, no weight decay) on an MLP 784-256-256-10,
60,000 MNIST training images (937 updates per epoch), 20 epochs, α0 = 0.2. Ng counts
epochs from 1 (epoch_num = 0-based epoch + 1), hence ``offset=1``:

* ``constant``: α = α0 throughout (the baseline);
* ``inverse_time``: α = α0 / (1 + decay_rate · epoch_num), decay_rate = 1: 0.1, 0.0667,
  0.05, 0.04 in epochs 1–4, the lecture's table;
* ``power``: α = 0.95^epoch_num · α0 (exponential decay): 0.19, 0.1805, 0.1715, …;
* ``inverse_sqrt``: α = k / √epoch_num · α0, k = 1, per epoch: 0.2, 0.1414, 0.1155, …;
* ``inverse_sqrt_update``: α = k / √t · α0 on the mini-batch clock t. Counted from
  t = 1 at a batch of 64 it would fall to α0/30 within the first epoch; here t counts
  from one epoch of updates (offset U = 937) with k = √U, so α = α0 / √(1 + updates/U):
  the same curve as ``inverse_sqrt`` at each epoch's start, smooth in between;
* ``staircase``: a discrete staircase, α halved every 4 epochs (the smooth curve
  0.5^(t/4) · α0 held flat for 4 epochs at a time: 0.2, 0.1, 0.05, 0.025, 0.0125);
* ``manual``: manual decay as a scripted change: α0 until epoch 10, then α = 0.02 (÷10),
  as one would set it by hand on seeing the loss level off. On a running run the same
  change is ``python -m lr_study.training.manual_lr --run_dir=... --lr=0.02``.

Every variant trains the same epochs at the same batch, so they differ only in α. The
train log records the LR every 25 updates, so that the schedules figure draws the
mini-batch clock's curve as trained.

One seed of the seven variants (``--config.seeds=0,``) took 3.4 minutes on 2 CPU cores
shared with other work (about 27 s a variant), final test accuracy 98.1–98.6%.
"""

import ml_collections

from lr_study import config as schema
from lr_study.study import select_variant

EPOCHS = 20
ALPHA0 = 0.2
BATCH_SIZE = 64
TRAIN_EXAMPLES = 60_000
UPDATES_PER_EPOCH = TRAIN_EXAMPLES // BATCH_SIZE  # 937
STAIR_EPOCHS = 4
MANUAL_EPOCH, MANUAL_LR = 10, 0.02
LOG_EVERY = 25  # updates between train-log rows


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The lecture's schedules as variants of one study; ``arg`` selects variants."""
  config = schema.get_config()
  config.seeds = (0, 1, 2)
  config.dataset = schema.dataset_defaults('mnist', train_split='train')
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=(256, 256),
                                                batch_norm=False, dropout=0.0))
  config.optimizer = ml_collections.ConfigDict(dict(name='sgd', weight_decay=0.0))
  config.learning_rate = ALPHA0
  config.batch_size = BATCH_SIZE
  alpha0 = config.get_ref('learning_rate')
  batch = dict(name='constant', batch_size=config.get_ref('batch_size'))
  schedules = {
      'constant': dict(name='constant', init_value=alpha0),
      'inverse_time': dict(name='inverse_time', init_value=alpha0, decay_rate=1.0, offset=1),
      'power': dict(name='power', init_value=alpha0, gamma=0.95, offset=1),
      'inverse_sqrt': dict(name='inverse_sqrt', init_value=alpha0, k=1.0, offset=1),
      'inverse_sqrt_update': dict(name='inverse_sqrt', init_value=alpha0,
                                  k=UPDATES_PER_EPOCH ** 0.5, offset=UPDATES_PER_EPOCH,
                                  clock='update'),
      'staircase': dict(name='staircase', step=STAIR_EPOCHS,
                        schedule=dict(name='power', init_value=alpha0,
                                      gamma=0.5 ** (1 / STAIR_EPOCHS), stepping='continuous')),
      'manual': dict(name='manual', init_value=alpha0,
                     changes=((MANUAL_EPOCH, MANUAL_LR),)),
  }
  config.variants = ml_collections.ConfigDict(
      {name: dict(lr_schedule=schedule, batch_schedule=batch)
       for name, schedule in schedules.items()})
  config.num_epochs = EPOCHS
  config.checkpoint_every_epochs = 0
  config.train_log_every_updates = LOG_EVERY
  return select_variant(config, arg, default=tuple(schedules))
