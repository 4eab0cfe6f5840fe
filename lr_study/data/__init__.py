"""Datasets for lr_study, all read through TFDS.

* ``specs``: what each dataset is (sizes, shapes, per-channel mean/std), known without
  touching the data; used by the dry run and the training plan.
* ``digits``: scikit-learn's handwritten digits as a TFDS builder (``lr_study_digits``).
* ``sources``: availability checks, offline preparation from ``manual_dir``, validation
  carving, per-process slicing, and loading whole splits as uint8 arrays.
* ``in_memory``: device-resident epochs (the default mode): jit/pmap-traceable batch
  gathering, normalization and augmentation, and padded/masked evaluation batches.
* ``augment``: on-device CIFAR augmentation (padded random crop, horizontal flip).
* ``streaming``: tf.data batches prefetched to the devices, for datasets too big to
  keep on the accelerator.

Nothing here imports TensorFlow at module import time except ``digits`` and
``streaming``; ``sources`` imports it on first use.
"""
