"""`constant`: T stays at `distill.temperature`."""

from worker.kd.schedules.base import SCHEDULES, Schedule


@SCHEDULES.register("constant")
class Constant(Schedule):
    def temperature(self, epoch: int) -> float:
        return self.start
