"""The gradient noise measurement's cost, as the loop pays it at each evaluation.

The loop calls ``gradient_noise.meter(feed, model, chunk, examples)``'s ``measure(state,
seed, epoch)`` at the evaluations of every ``gradient_noise_every_epochs`` epochs, after
the epoch's device work has finished, and waits for its floats. Timing that call alone,
with the study's feed and model, is its cost in the loop. Each round times every setting
once, after the loops; its cost is that time over the same round's median lr_study
epoch, divided by the schema's ``gradient_noise_every_epochs``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import jax

from benchmarks.host import summary
from lr_study import config as schema
from lr_study.data.feeds import InMemoryFeed
from lr_study.runtime import devices
from lr_study.training import gradient_noise
from lr_study.training.setup import RunSetup
from lr_study.training.step import init_train_state

TARGET_PERCENT = 3.0


class NoiseClock:
  """One ``measure`` per setting, compiled at construction, timed on demand."""

  def __init__(self, setup: RunSetup, feed: InMemoryFeed, settings: Sequence[tuple[int, int]]):
    self.state = devices.replicate(init_train_state(
        setup.model, setup.tx, 0, setup.spec.image_shape,
        max(gradient_noise.memory_size(feed, *setting) for setting in settings)))
    processes, local = jax.process_count(), jax.local_device_count()
    self.meters, self.examples, self.first_call_s = {}, {}, {}
    for chunk, examples in settings:
      name = f'{chunk}:{examples}'
      self.meters[name] = gradient_noise.meter(feed, setup.model, chunk, examples)
      chunks = gradient_noise.num_chunks(feed.num_local_train, chunk, examples, local,
                                         processes)
      self.examples[name] = sum(chunks) * chunk
      started = time.perf_counter()
      self.meters[name](self.state, 0, 0)  # compiles
      self.first_call_s[name] = time.perf_counter() - started

  def time_once(self, epoch: int) -> dict[str, float]:
    """Seconds of one measurement of each setting, over epoch ``epoch``'s order."""
    seconds = {}
    for name, measure in self.meters.items():
      started = time.perf_counter()
      measure(self.state, 0, epoch)
      seconds[name] = time.perf_counter() - started
    return seconds


def cost(clock: NoiseClock, seconds: dict[str, list[dict[str, float]]],
         epochs: dict[str, list[float]]) -> dict[str, Any]:
  """Each setting's seconds (all rounds) and percent of the epoch at each batch size, from
  the seconds of each round and that round's median lr_study epoch, by batch size, for
  the schema's measurement every ``gradient_noise_every_epochs`` epochs. The clock's first
  setting is the default."""
  every = schema.get_config().gradient_noise_every_epochs
  settings = {}
  for name in clock.meters:
    percent = {b: summary([100 * s[name] / (every * e)
                           for s, e in zip(seconds[b], epochs[b], strict=True)])
               for b in seconds}
    settings[name] = {'examples_measured': clock.examples[name],
                      'first_call_s': clock.first_call_s[name],
                      'seconds': summary([s[name] for b in seconds for s in seconds[b]]),
                      'percent_of_training': percent}
  under = [name for name, v in settings.items()
           if all(p['median'] <= TARGET_PERCENT for p in v['percent_of_training'].values())]
  return {'default': next(iter(settings)), 'every_epochs': every,
          'target_percent': TARGET_PERCENT, 'settings': settings,
          'under_target_at_every_batch_size': under}
