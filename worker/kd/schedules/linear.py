"""`linear`: T goes in a straight line from `distill.temperature` to `end` at the last epoch."""

from worker.kd.schedules.base import SCHEDULES, Schedule


@SCHEDULES.register("linear")
class Linear(Schedule):
    def temperature(self, epoch: int) -> float:
        return self.start + (self.spec["end"] - self.start) * epoch / self.span()
