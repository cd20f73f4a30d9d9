"""Temperature schedules, one file per kind (found by discovery, registered under the catalog's
names, distillery.types.catalog.schedules): constant, linear, cosine, step and plateau."""

from app.plugins import import_all
from worker.kd.schedules.base import SCHEDULES, Schedule, TemperatureSchedule

import_all(__name__)

__all__ = ["SCHEDULES", "Schedule", "TemperatureSchedule"]
