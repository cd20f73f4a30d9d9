"""`plateau`: T changes by `factor` when the validation metric stalls for more than `patience`
epochs (like ReduceLROnPlateau), kept within [min_temperature, max_temperature]."""

from worker.kd.schedules.base import SCHEDULES, Schedule


@SCHEDULES.register("plateau")
class Plateau(Schedule):
    def temperature(self, epoch: int) -> float:
        return self.current

    def observe(self, metrics: dict[str, float]) -> None:
        metric = self.spec["metric"]
        value = metrics[metric] if metric == "val_loss" else -metrics[metric]
        if self.best is None or value < self.best - 1e-4:
            self.best, self.stale_epochs = value, 0
            return
        self.stale_epochs += 1
        if self.stale_epochs > self.spec["patience"]:
            changed = self.current * self.spec["factor"]
            low, high = self.spec["min_temperature"], self.spec["max_temperature"]
            self.current = min(max(changed, low), high)
            self.stale_epochs = 0
