"""`cosine`: T follows a half cosine from `distill.temperature` to `end` at the last epoch."""

import math

from worker.kd.schedules.base import SCHEDULES, Schedule


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    def temperature(self, epoch: int) -> float:
        end = self.spec["end"]
        return end + (self.start - end) * (1 + math.cos(math.pi * epoch / self.span())) / 2
