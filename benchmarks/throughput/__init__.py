r"""Whole-epoch training throughput of lr_study's loop against the bound of its step.

    python -m benchmarks.throughput [--batch_sizes=64,1024] [--rounds=7] [--epochs=3]

One process, real MNIST (60,000 training images, prepared offline from the four files
in ``--manual_dir``), the MLP 784-256-256-10, SGD with momentum at a constant LR. The
headline is lr_study's loop ÷ the same jit step on a fixed on-device batch (the bound,
no input pipeline at all); lr_study ÷ the host-fed jit loops (NumPy slicing, tf.data)
and PyTorch are the secondary figures. The gradient noise measurement, a separate call
at each evaluation, is timed beside the loops as a share of lr_study's epoch. The CPU
model and the instruction set XLA compiles for (``XLA_FLAGS=--xla_cpu_max_isa=...``
honoured) are recorded. Modules: ``options`` (flags), ``loops`` (lr_study),
``peers`` (the others), ``noise``, ``timing`` (the rounds), ``cold_start``, ``report``.
Writes ``throughput.json`` and ``throughput.md`` to ``--out_dir``.
"""
