"""A progress line per run: epoch, phase, batch size, LR, loss, examples/s and ETA.

On a terminal it redraws one line in place a few times a second; otherwise (a log file,
CI, a notebook cell captured to a file) it prints a plain line every ``log_every_s``
seconds. Values are read from the devices only when a line is drawn, never per update.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
  """Draws the progress of one run; ``due()`` is the only call made per update."""

  def __init__(self, label: str, total_examples: int, stream: TextIO | None = None,
               log_every_s: float = 10.0):
    self.label = label
    self.total_examples = total_examples
    self.stream = stream or sys.stderr
    self.tty = self.stream.isatty()
    self.interval = 0.25 if self.tty else log_every_s
    self.start = time.monotonic()
    self._next = self.start + self.interval
    self._last_time = self.start
    self._last_examples = 0

  def due(self) -> bool:
    return time.monotonic() >= self._next

  def show(self, *, epoch: float, num_epochs: int, phase: int, num_phases: int, batch_size: int,
           learning_rate: float, loss: float, examples_seen: int) -> None:
    """Draws one line (the caller reads ``loss`` from the devices only for it)."""
    now = time.monotonic()
    rate = (examples_seen - self._last_examples) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_examples = now, examples_seen
    eta = (self.total_examples - examples_seen) / rate if rate > 0 else float('inf')
    line = (f'{self.label} | epoch {epoch:6.2f}/{num_epochs} | phase {phase + 1}/{num_phases} '
            f'| B {batch_size} | lr {learning_rate:.4g} | loss {loss:.4f} '
            f'| {rate:,.0f} ex/s | ETA {_duration(eta) if eta != float("inf") else "?"}')
    self.stream.write(f'\r{line}\x1b[K' if self.tty else line + '\n')
    self.stream.flush()
    self._next = now + self.interval

  def close(self, message: str) -> None:
    self.stream.write(('\r' + message + '\x1b[K\n') if self.tty else message + '\n')
    self.stream.flush()
