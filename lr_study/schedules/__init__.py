"""Learning-rate schedules: one registry, each schedule a formula on a declared clock."""

from lr_study.schedules import formulas as _formulas  # noqa: F401  (registers the schedules)
from lr_study.schedules.base import LRSchedule, build_lr_schedule, register, registered_schedules

__all__ = ['LRSchedule', 'build_lr_schedule', 'register', 'registered_schedules']
