"""Temperature schedules: constant, linear, cosine, step and plateau (performance-driven)."""

import math
from typing import Any


class TemperatureSchedule:
    """`temperature(epoch)` gives the T an epoch trains with; `observe` sees its validation
    metrics afterwards (only `plateau` uses them). State round-trips through a checkpoint."""

    def __init__(self, spec: dict[str, Any], start: float, epochs: int) -> None:
        self.spec = spec
        # `spec` is resolved (distillery.types.catalog.schedules): every field of its kind is there.
        self.kind = spec["kind"]
        if self.kind not in ("constant", "linear", "cosine", "step", "plateau"):
            raise KeyError(f"unknown temperature schedule {self.kind!r}")
        self.start = start
        self.epochs = epochs
        # plateau state
        self.current = start
        self.best: float | None = None
        self.stale_epochs = 0

    def temperature(self, epoch: int) -> float:
        span = max(self.epochs - 1, 1)
        if self.kind == "linear":
            return self.start + (self.spec["end"] - self.start) * epoch / span
        if self.kind == "cosine":
            end = self.spec["end"]
            return end + (self.start - end) * (1 + math.cos(math.pi * epoch / span)) / 2
        if self.kind == "step":
            return self.start * self.spec["gamma"] ** (epoch // self.spec["step_size"])
        if self.kind == "plateau":
            return self.current
        return self.start

    def observe(self, metrics: dict[str, float]) -> None:
        if self.kind != "plateau":
            return
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

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "best": self.best, "stale_epochs": self.stale_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = state["current"]
        self.best = state["best"]
        self.stale_epochs = state["stale_epochs"]
