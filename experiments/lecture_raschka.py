r"""Sebastian Raschka's STAT 453 L12.1: LR decay, batch size and cyclical LRs on real MNIST.

    python launch.py --config=experiments/lecture_raschka.py \
        --config.dataset.manual_dir=../shared/data/mnist --workdir=runs/lecture_raschka

One variant alone: ``--config=experiments/lecture_raschka.py:triangular``; the plans
only: ``--dry_run``. Figures from the finished runs:
``python -m analysis.figures --workdir=runs/lecture_raschka --out_dir=runs/lecture_raschka/figures``.

Raschka's MNIST setup and net: 54,000 training images and 6,000 held out for validation,
the 10,000 test images for the reported accuracy; the MLP 784-75-45-10 with batch norm
and dropout (0.5, 0.3); SGD with momentum 0.9, no weight decay; 20 epochs, η0 = 0.1,
B = 64 (843 updates per epoch) unless a variant says otherwise:

* ``exponential``: η = η0·e^(−k·t), k = 0.1 (his lecture's), t the 0-based epoch (per
  epoch);
* ``step``: η0 halved every T = 5 epochs (PyTorch ``StepLR(step_size=5, gamma=0.5)``);
* ``inverse_time``: inverse decay η = η0 / (1 + k·t), k = 0.25;
* ``batch_64`` and ``batch_1024``: η0 held, B = 64 (843 updates per epoch) against
  B = 1024 (52): equal epochs, 16× fewer updates;
* ``triangular``: Smith's triangular cyclical LR between the bounds of the LR range
  test below, half-cycle 2,107 updates (2.5 epochs: four whole cycles in 20 epochs).

The train log records the LR every 25 updates, so that the schedules figure draws the
cycles as trained. One seed of the six variants (``--config.seeds=0,``) took 95 s on 2
CPU cores shared with other work, final test accuracy 96.4–96.9%.

The bounds come from ``lr_range_test``, a one-epoch run whose LR rises exponentially
from 1e-4 to 1 over its 843 updates, logging every update (not in the default set)::

    python launch.py --config=experiments/lecture_raschka.py:lr_range_test \
        --config.dataset.manual_dir=../shared/data/mnist --config.seeds=0, \
        --workdir=runs/raschka_range
    python -m analysis.lr_range_test --workdir=runs/raschka_range/lr_range_test/seed_0

printed, for seed 0 (on 2 CPU cores: 16 s, then 1 s)::

    suggested CLR bounds: base_lr=0.0002425 max_lr=0.05756 (Smith's rule of thumb: base_lr = max_lr/4 = 0.01439)

``base_lr`` is where the smoothed loss has made 10% of its fall (the model starts to
learn: the accuracy starts to rise), ``max_lr`` where it is lowest, before it turns
ragged and climbs (the accuracy levels off, then falls): Raschka's and Smith's reading
of the range test, which ``triangular`` uses as measured. Smith's rule of thumb,
max_lr/4, is the alternative when the onset is hard to see:
``--config.variants.triangular.lr_schedule.base_lr=0.01439``.

Where ``CLR_BASE_LR`` and ``CLR_MAX_LR`` come from: they are the bounds of
``docs/results/lecture_raschka_range.json``, which ``make results`` (``analysis.results``)
writes from a fresh range test before it runs this study with the bounds that test found
(``--config.variants.triangular.lr_schedule.base_lr=... max_lr=...``), so the published
triangular run always trains between its own range test's bounds; ``tests/test_results.py``
fails when these constants differ from the committed file (update them then). The range
test is deterministic on one instruction set and jaxlib; code that changes the first epoch
of training moves them.
"""

import ml_collections

from lr_study import config as schema
from lr_study.study import select_variant

EPOCHS = 20
LR = 0.1
BATCH_SIZE = 64
TRAIN_EXAMPLES = 54_000
UPDATES_PER_EPOCH = TRAIN_EXAMPLES // BATCH_SIZE  # 843
EXPONENTIAL_K = 0.1
STEP_EPOCHS = 5
INVERSE_K = 0.25
LOG_EVERY = 25  # updates between train-log rows
LARGE_BATCH = 1024
RANGE = dict(min_lr=1e-4, max_lr=1.0, num_updates=UPDATES_PER_EPOCH, mode='exponential')
CLR_BASE_LR, CLR_MAX_LR = 0.0002425, 0.05756  # docs/results/lecture_raschka_range.json
CLR_STEP_SIZE = UPDATES_PER_EPOCH * 5 // 2  # 2,107 updates: 2.5 epochs per half-cycle


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The lecture's schedules as variants of one study; ``arg`` selects variants."""
  config = schema.get_config()
  config.seeds = (0, 1, 2)
  config.dataset = schema.dataset_defaults('mnist', validation_size=6000)
  config.model = ml_collections.ConfigDict(dict(name='mlp', widths=(75, 45),
                                                batch_norm=True, dropout=(0.5, 0.3)))
  config.optimizer = ml_collections.ConfigDict(dict(name='momentum', momentum=0.9,
                                                    weight_decay=0.0))
  config.learning_rate = LR
  config.batch_size = BATCH_SIZE
  eta0 = config.get_ref('learning_rate')
  batch = dict(name='constant', batch_size=config.get_ref('batch_size'))
  constant = dict(name='constant', init_value=eta0)
  config.variants = ml_collections.ConfigDict({
      'exponential': dict(lr_schedule=dict(name='exponential', init_value=eta0,
                                           k=EXPONENTIAL_K),
                          batch_schedule=batch),
      'step': dict(lr_schedule=dict(name='step', init_value=eta0, gamma=0.5,
                                    step_size=STEP_EPOCHS),
                   batch_schedule=batch),
      'inverse_time': dict(lr_schedule=dict(name='inverse_time', init_value=eta0,
                                            decay_rate=INVERSE_K),
                           batch_schedule=batch),
      'batch_64': dict(lr_schedule=constant, batch_schedule=batch),
      'batch_1024': dict(lr_schedule=constant,
                         batch_schedule=dict(name='constant', batch_size=LARGE_BATCH)),
      'triangular': dict(lr_schedule=dict(name='triangular', base_lr=CLR_BASE_LR,
                                          max_lr=CLR_MAX_LR, step_size=CLR_STEP_SIZE),
                         batch_schedule=batch),
      'lr_range_test': dict(lr_schedule=dict(name='lr_range', **RANGE), batch_schedule=batch,
                            num_epochs=1, train_log_every_updates=1),
  })
  config.num_epochs = EPOCHS
  config.checkpoint_every_epochs = 0
  config.train_log_every_updates = LOG_EVERY
  return select_variant(config, arg, default=('exponential', 'step', 'inverse_time',
                                              'batch_64', 'batch_1024', 'triangular'))
