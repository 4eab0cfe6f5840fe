"""lr_study: learning-rate and batch-size schedule studies in JAX, Optax and Flax.

The public API, for notebooks and other training loops:

* ``lr_study.run(config, workdir)``: trains or resumes every run of a study config;
* ``lr_study.optax_schedule(config, num_train_examples, num_devices=1)``: a run's LR as
  an ``optax.Schedule`` of the update count.

TensorFlow is optional (``pip install "lr_study[tfds]"``): lr_study imports it only for
TFDS datasets, streaming mode and ``gs://`` workdirs (``lr_study.runtime.quiet_tf``). It
logs from C++ (a failed cloud credential lookup, for one) unless ``TF_CPP_MIN_LOG_LEVEL``
is set: importing lr_study sets it to 3 unless the user has, before JAX (which sets 1).
"""

import os

__version__ = '0.1.0'

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def __getattr__(name: str):
  """Imports the API on first use, so that ``import lr_study.data.specs`` stays light."""
  if name in ('run', 'optax_schedule'):
    from lr_study import api  # pylint: disable=g-import-not-at-top
    return getattr(api, name)
  raise AttributeError(f'module lr_study has no attribute {name!r}')
