"""lr_study.runtime.progress: the progress line's rate and ETA leave out XLA compiles."""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np

from lr_study.runtime import progress


class Clock:
  def __init__(self):
    self.now = 1000.0

  def __call__(self) -> float:
    return self.now


def _line(p: progress.Progress, examples_seen: int) -> str:
  p.show(epoch=1.0, num_epochs=40, phase=0, num_phases=4, batch_size=8, learning_rate=0.05,
         loss=0.5, examples_seen=examples_seen)
  return p.stream.getvalue().splitlines()[-1]


def _progress(monkeypatch, **kwargs) -> tuple[progress.Progress, Clock]:
  clock = Clock()
  monkeypatch.setattr(progress.time, 'monotonic', clock)
  return progress.Progress('decay seed 0', 100_000, stream=io.StringIO(), **kwargs), clock


def test_the_first_eta_leaves_out_the_compile(monkeypatch):
  p, clock = _progress(monkeypatch)
  progress._on_duration(progress.COMPILE_EVENT, 30.0)  # the train step compiles for 30 s
  clock.now += 31.0  # ... then trains 10,000 examples in 1 s
  line = _line(p, 10_000)
  assert line.endswith('| 10,000 ex/s | ETA 0:00:09'), line


def test_later_etas_use_the_rate_since_the_last_line(monkeypatch):
  p, clock = _progress(monkeypatch)
  clock.now += 2.0
  _line(p, 10_000)
  clock.now += 10.0
  progress._on_duration(progress.COMPILE_EVENT, 5.0)  # a new batch size compiles
  line = _line(p, 60_000)  # 50,000 examples in 10 s, 5 of them compiling
  assert line.endswith('| 10,000 ex/s | ETA 0:00:04'), line


def test_an_interval_spent_compiling_gives_no_eta(monkeypatch):
  p, clock = _progress(monkeypatch)
  progress._on_duration(progress.COMPILE_EVENT, 12.0)
  clock.now += 12.0
  assert _line(p, 8).endswith('| ? ex/s | ETA ?')


def test_a_resumed_run_counts_only_what_this_process_trained(monkeypatch):
  p, clock = _progress(monkeypatch, examples_seen=50_000)
  clock.now += 5.0
  assert _line(p, 60_000).endswith('| 2,000 ex/s | ETA 0:00:20')


def test_other_events_are_not_compiles(monkeypatch):
  before = progress.compile_seconds()
  progress._on_duration('/jax/some/other_duration', 7.0)
  assert progress.compile_seconds() == before


def test_a_real_compile_is_counted():
  before = progress.compile_seconds()
  shape = (3, 7, int(np.random.default_rng().integers(11, 10_000)))  # a shape not compiled yet
  jax.jit(lambda x: jnp.sin(x) * 2 + 1)(jnp.ones(shape)).block_until_ready()
  assert progress.compile_seconds() > before
