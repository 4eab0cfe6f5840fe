"""Checkpoints of a run: the train state and the loop's own state, in one atomic file.

The loop state holds what a resumed run needs to continue exactly: the epochs done, the
update count, the dynamic schedules' controllers and any batch sizes chosen at run time.
The batch order needs nothing stored: each epoch's permutation is a function of
(seed, epoch).
"""

from __future__ import annotations

import json
import os
from typing import Any

import flax.serialization

from lr_study.runtime import run_files
from lr_study.training.step import TrainState


def save(run_dir: str, state: TrainState, loop_state: dict[str, Any]) -> None:
  """Writes ``state`` (host arrays) and ``loop_state`` (JSON-able) atomically."""
  payload = {'state': flax.serialization.to_state_dict(state),
             'loop_state': json.dumps(loop_state)}
  run_files.write_atomic(os.path.join(run_dir, run_files.CHECKPOINT),
                         flax.serialization.msgpack_serialize(payload))


def restore(run_dir: str, template: TrainState) -> tuple[TrainState, dict[str, Any]] | None:
  """The checkpointed (state, loop_state) shaped like ``template``, or None if absent."""
  path = os.path.join(run_dir, run_files.CHECKPOINT)
  if not os.path.exists(path):
    return None
  with open(path, 'rb') as f:
    payload = flax.serialization.msgpack_restore(f.read())
  state = flax.serialization.from_state_dict(template, payload['state'])
  return state, json.loads(payload['loop_state'])
