"""`step`: T is multiplied by `gamma` every `step_size` epochs."""

from worker.kd.schedules.base import SCHEDULES, Schedule


@SCHEDULES.register("step")
class Step(Schedule):
    def temperature(self, epoch: int) -> float:
        return self.start * self.spec["gamma"] ** (epoch // self.spec["step_size"])
