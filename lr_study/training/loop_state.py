"""The loop state: what a checkpoint holds besides the train state, so that a resumed run
continues exactly: the loop's counters (``"loop"``) and the dynamic schedules' state
(``"controllers"``), saved with the train state and restored with it."""

from __future__ import annotations

import dataclasses
from typing import Any

from lr_study.runtime import devices, hosts, run_files
from lr_study.runtime.run_dir import RunDirectory
from lr_study.training import manual_lr, records
from lr_study.training.controllers import DynamicSchedules


@dataclasses.dataclass
class LoopCounters:
  """The loop's own counters."""

  epoch: int = 0  # next epoch to run
  update: int = 0  # updates applied
  examples_seen: int = 0
  wall_time: float = 0.0  # training + evaluation seconds, summed over resumes
  sums_at_train_log: records.Sums = records.NO_SUMS  # metric sums at the last train-log line
  log_lines: dict[str, int] | None = None  # records in each log at the checkpoint

  def to_json(self) -> dict[str, Any]:
    """As checkpointed; ``sums_at_train_log`` under its on-disk key, ``train_log_mark``."""
    saved = dataclasses.asdict(self)
    saved['train_log_mark'] = saved.pop('sums_at_train_log')
    return saved

  @classmethod
  def from_json(cls, saved: dict[str, Any]) -> LoopCounters:
    saved = dict(saved)
    sums = tuple(saved.pop('train_log_mark'))
    return cls(**saved, sums_at_train_log=sums)


def save(files: RunDirectory, state: Any, counters: LoopCounters,
         schedules: DynamicSchedules) -> None:
  """A checkpoint of ``state`` (on the devices) at ``counters.update``, with the log
  lines written so far; then the manual request it holds is acknowledged."""
  counters.log_lines = files.lines()
  if not files.writer:
    return
  files.checkpoints.save(counters.update, devices.unreplicate(state), {
      'loop': counters.to_json(), 'controllers': schedules.state_dict()})
  if schedules.applied_request:
    manual_lr.acknowledge(files.path, schedules.applied_request)


def restore(files: RunDirectory, config: Any, schedules: DynamicSchedules, host_state: Any
            ) -> tuple[Any, LoopCounters]:
  """The checkpointed state and counters of ``files`` (process 0's, on every process), or
  the fresh ones; a ConfigError before any file changes where ``lr_study.runtime.resume``
  refuses."""
  files.check_config(config)
  restored = files.checkpoints.restore(host_state) if files.writer else None
  saved = hosts.from_writer(restored.loop_state if restored else None)
  if saved is None:
    files.remove(run_files.SUMMARY)
    return host_state, LoopCounters()
  counters = LoopCounters.from_json(saved['loop'])
  files.check_logs(counters.log_lines, counters.update)
  if restored and restored.skipped:
    print(f'{files.path}: {restored.skipped}', flush=True)
  ended = files.read_json(run_files.SUMMARY) or {}
  if ended.get('epochs') != schedules.plan.num_epochs or (
      ended.get('status') != 'diverged' and ended.get('updates') != counters.update):
    files.remove(run_files.SUMMARY)  # it trains on: extended, or its last checkpoint unusable
  schedules.load_state_dict(saved['controllers'])
  return hosts.arrays_from_writer(restored.state if restored else host_state), counters
