"""A progress line per run: epoch, phase, batch size, LR, loss, examples/s and ETA.

On a terminal it redraws one line in place a few times a second; otherwise (a log file,
CI, a notebook cell captured to a file) it prints a plain line every ``log_every_s``
seconds. Values are read from the devices only when a line is drawn, never per update.

The rate, and the ETA drawn from it, leave out the time XLA spent compiling since the
last line (the ``jax.monitoring`` event :data:`COMPILE_EVENT`): the first line of a run,
which waits for the train step's compile, would otherwise promise hours. The ETA is the
examples still to train at the rate of the last interval; it counts no compile to come
(a new batch size compiles once more, in seconds).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import jax

COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'  # never nested in another
MIN_MEASURED_S = 0.05  # an interval with less time outside compiles gives no rate

_compile_seconds = [0.0]


def _on_duration(event: str, duration_secs: float, **kwargs: str | int) -> None:
  del kwargs
  if event == COMPILE_EVENT:
    _compile_seconds[0] += duration_secs


jax.monitoring.register_event_duration_secs_listener(_on_duration)


def compile_seconds() -> float:
  """Seconds XLA has spent compiling in this process since this module was imported."""
  return _compile_seconds[0]


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
  """Draws the progress of one run; ``due()`` is the only call made per update.

  ``examples_seen``: where the run starts (a resumed run's count), so that the first
  line's rate counts only what this process trained.
  """

  def __init__(self, label: str, total_examples: int, stream: TextIO | None = None,
               log_every_s: float = 10.0, examples_seen: int = 0):
    self.label = label
    self.total_examples = total_examples
    self.stream = stream or sys.stderr
    self.tty = self.stream.isatty()
    self.interval = 0.25 if self.tty else log_every_s
    self.start = time.monotonic()
    self._next = self.start + self.interval
    self._last_time = self.start
    self._last_compile = compile_seconds()
    self._last_examples = examples_seen

  def due(self) -> bool:
    return time.monotonic() >= self._next

  def rate(self, examples_seen: int) -> float | None:
    """Examples per second since the last line, compiles left out; None when too little
    time outside compiles has passed to tell."""
    now, compiled = time.monotonic(), compile_seconds()
    measured = (now - self._last_time) - (compiled - self._last_compile)
    trained = examples_seen - self._last_examples
    self._last_time, self._last_compile, self._last_examples = now, compiled, examples_seen
    return trained / measured if measured >= MIN_MEASURED_S and trained > 0 else None

  def show(self, *, epoch: float, num_epochs: int, phase: int, num_phases: int, batch_size: int,
           learning_rate: float, loss: float, examples_seen: int) -> None:
    """Draws one line (the caller reads ``loss`` from the devices only for it)."""
    rate = self.rate(examples_seen)
    left = max(self.total_examples - examples_seen, 0)
    eta = '?' if rate is None else _duration(left / rate)
    line = (f'{self.label} | epoch {epoch:6.2f}/{num_epochs} | phase {phase + 1}/{num_phases} '
            f'| B {batch_size} | lr {learning_rate:.4g} | loss {loss:.4f} '
            f'| {"?" if rate is None else f"{rate:,.0f}"} ex/s | ETA {eta}')
    self.stream.write(f'\r{line}\x1b[K' if self.tty else line + '\n')
    self.stream.flush()
    self._next = time.monotonic() + self.interval

  def close(self, message: str) -> None:
    self.stream.write(('\r' + message + '\x1b[K\n') if self.tty else message + '\n')
    self.stream.flush()
