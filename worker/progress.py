"""A job's progress and ETA: pure bookkeeping over the stages' planned work (no I/O).

Work is counted in example passes: a stage plans how many it will do (an epoch of distillation
is one pass over its examples, inference counts a third of one), and the job's fraction is the
work of the stages before the current one plus the current one's done part, over the total.
The ETA extrapolates from the rate since an origin that skips work an earlier attempt did (a
resumed job would otherwise promise to finish at once)."""

import time
from collections.abc import Callable
from typing import Any

# Progress is worth an ETA once this much of the job has happened since the origin.
MIN_GAIN_FOR_ETA = 0.005


class Progress:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stage: str | None = None
        self.work_total = 1.0
        self.work_before: dict[str, float] = {}
        self.work_of: dict[str, float] = {}
        self.stage_fraction = 0.0
        self.epochs: tuple[int, int] | None = None
        self.origin: tuple[float, float] | None = None

    def plan(self, work: dict[str, float]) -> None:
        """The planned work of each stage, in the order they run."""
        total = 0.0
        for stage, amount in work.items():
            self.work_before[stage] = total
            total += amount
        self.work_of, self.work_total = dict(work), max(total, 1.0)
        self.restart_eta()

    def enter(self, stage: str) -> None:
        self.stage, self.stage_fraction, self.epochs = stage, 0.0, None

    def start_epochs(self, epochs: int) -> None:
        self.epochs = (0, epochs)

    def epoch_done(self, epoch: int) -> None:
        """`epoch` (1-based) of the current training stage is done."""
        epochs = self.epochs[1] if self.epochs else epoch
        self.epochs = (epoch, epochs)
        self.stage_fraction = epoch / epochs

    def part_done(self, done: int, total: int) -> None:
        """`done` of the current stage's `total` equal parts are done (soft-label shards)."""
        self.stage_fraction = done / max(total, 1)

    def resumed_after(self, epochs_done: int) -> None:
        """The stage resumes from a checkpoint: its first `epochs_done` epochs were done before."""
        epochs = self.epochs[1] if self.epochs else epochs_done
        self.stage_fraction = epochs_done / max(epochs, 1)
        self.restart_eta()

    def restart_eta(self) -> None:
        """Measure the rate from now on (work before now was not done at this attempt's pace)."""
        self.origin = None

    def fraction(self) -> float:
        stage = self.stage or ""
        done = self.work_before.get(stage, 0.0) + self.work_of.get(stage, 0.0) * self.stage_fraction
        return min(done / self.work_total, 1.0)

    def snapshot(self, done: bool = False) -> dict[str, Any]:
        """The job's `progress` object."""
        if done:
            return {"stage": None, "epoch": None, "epochs": None, "fraction": 1.0, "eta_seconds": 0}
        fraction = self.fraction()
        now = self.clock()
        if self.origin is None:
            self.origin = (now, fraction)
        origin_time, origin_fraction = self.origin
        gained = fraction - origin_fraction
        eta = None
        if gained > MIN_GAIN_FOR_ETA:
            eta = round((now - origin_time) * (1 - fraction) / gained, 1)
        epoch, epochs = self.epochs or (None, None)
        return {
            "stage": self.stage,
            "epoch": epoch,
            "epochs": epochs,
            "fraction": round(fraction, 4),
            "eta_seconds": eta,
        }
