"""What a temperature schedule is (`distill.temperature_schedule`), the registry of kinds, and
TemperatureSchedule, what the training loop holds: the job's kind, built from its resolved spec.

`temperature(epoch)` gives the T an epoch trains with; `observe` sees its validation metrics
afterwards (only `plateau` uses them). State round-trips through a checkpoint, in one shape for
every kind (checkpoints written before kinds had files of their own load unchanged)."""

from typing import Any, ClassVar

from worker.registry import Registry


class Schedule:
    kind: ClassVar[str]

    def __init__(self, spec: dict[str, Any], start: float, epochs: int) -> None:
        # `spec` is resolved (distillery.types.catalog.schedules): every field of its kind is there.
        self.spec = spec
        self.start = start
        self.epochs = epochs
        # What a performance-driven kind changes as it goes (plateau).
        self.current = start
        self.best: float | None = None
        self.stale_epochs = 0

    def span(self) -> int:
        """Epochs from the first to the last (at least 1)."""
        return max(self.epochs - 1, 1)

    def temperature(self, epoch: int) -> float:
        raise NotImplementedError

    def observe(self, metrics: dict[str, float]) -> None:
        """An epoch's validation metrics, once it ran (a fixed schedule ignores them)."""

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "best": self.best, "stale_epochs": self.stale_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = state["current"]
        self.best = state["best"]
        self.stale_epochs = state["stale_epochs"]


SCHEDULES: Registry[type[Schedule]] = Registry("temperature schedule")


class TemperatureSchedule:
    """The job's schedule: the kind its spec names (one file each in this package)."""

    def __init__(self, spec: dict[str, Any], start: float, epochs: int) -> None:
        self.kind = spec["kind"]
        self.schedule = SCHEDULES.get(self.kind)(spec, start, epochs)

    def temperature(self, epoch: int) -> float:
        return self.schedule.temperature(epoch)

    def observe(self, metrics: dict[str, float]) -> None:
        self.schedule.observe(metrics)

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state)
