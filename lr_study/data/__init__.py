"""Datasets for lr_study, read with NumPy or through TFDS.

* ``specs``: what each dataset is (sizes, shapes, per-channel mean/std), known without
  touching the data (``arrays`` reads its ``.npz``); used by the dry run and the plan.
* ``splits``: TFDS split strings resolved to ranges of examples, without TFDS.
* ``sources``: which reader serves ``config.dataset``, availability checks, validation
  carving, per-process slicing, and loading whole splits as uint8 arrays.
* ``local``: the NumPy reader, which needs neither TensorFlow nor TFDS: the embedded
  digits, an ``.npz`` of your own (``arrays``), MNIST's four idx files.
* ``tfds_source``: the TFDS reader: offline preparation from ``manual_dir``, downloads
  when asked, per-process splits.
* ``digits``: scikit-learn's handwritten digits as a TFDS builder (``lr_study_digits``),
  for streaming mode.
* ``in_memory``: device-resident epochs (the default mode): jit/pmap-traceable batch
  gathering, normalization and augmentation, and padded/masked evaluation batches.
* ``augment``: on-device CIFAR augmentation (padded random crop, horizontal flip).
* ``streaming``: tf.data batches prefetched to the devices, for datasets too big to
  keep on the accelerator.

Nothing here imports TensorFlow at module import time except ``digits``; ``tfds_source``
and ``streaming`` import it on first use, only for the datasets and the mode that need it.
"""
