"""Learning-rate schedules: one registry, each schedule a formula on a declared clock.

Config names (``config.lr_schedule.name``), by module:

* :mod:`~lr_study.schedules.decay`: ``constant``, ``exponential``, ``power``, ``step``,
  ``multistep``, ``inverse_time``, ``inverse_sqrt``, ``cosine``;
* :mod:`~lr_study.schedules.wrappers`: ``staircase``, ``warmup`` (around an inner schedule);
* :mod:`~lr_study.schedules.cyclical`: ``triangular``, ``triangular2``, ``exp_range``,
  ``lr_range`` (Smith 2017, update clock);
* :mod:`~lr_study.schedules.dynamic`: ``reduce_on_plateau``, ``manual`` (changed at run time).

docs/schedules.md tabulates them with their formulas, clocks and PyTorch/Keras/optax
counterparts.
"""

from lr_study.schedules import cyclical, decay, dynamic, wrappers  # noqa: F401  (registers them)
from lr_study.schedules.base import (LRSchedule, build_lr_schedule, register, registered_schedules,
                                     schedule_example)
from lr_study.schedules.dynamic import plateau_controller
from lr_study.schedules import batch, batch_dynamic, batch_ramp  # noqa: F401,E402  (registers the batch schedules)

__all__ = ['LRSchedule', 'build_lr_schedule', 'plateau_controller', 'register',
           'registered_schedules', 'schedule_example']
