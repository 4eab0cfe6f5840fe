r"""The device-resident input pipeline timed alone, against the whole train step.

    python -m benchmarks.input_pipeline [--steps 400] [--batch_size 128] [--synthetic]

Real MNIST (or ``--synthetic`` uint8 data of its shapes), the MLP 784-256-256-10 with
momentum SGD, the calls the training loop makes, at global batch B over D local devices
(P = B/D each). Target: the data side under 5% of the step.

* (a) the data side: what the step runs for its batch (``clock.epoch_and_position``,
  then ``in_memory.take_micro_batches``) alone in a pmap, returning the batch as the flat
  rows the MLP reads; (a′) the same returning [P, 28, 28, 1] images;
* (b) the train step, one update per call; the dispatch floor, a pmap that only advances
  the counter, which (a) and (b) both pay; (b′) the streaming-mode step on one fixed
  batch on the devices (normalize, no gather): (b − b′)/b is what the gather adds;
* (a_K), (b_K): both with ``--updates_per_dispatch`` updates per call, as the loop
  dispatches them;
* (d) streaming: ``streaming.epoch_batches`` (tf.data and a host-to-device copy per batch).

Each timing compiles and warms up first, then the timings take turns over ``--repeats``
repetitions of ``--steps`` updates (repetition r is epoch r + 1); medians are the
headline. Modules: ``timing``, ``report``, ``cli``.
"""
