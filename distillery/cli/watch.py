"""`distillery watch`: a job followed to its end, a row per stage with its epochs, the latest
loss and accuracy and an ETA. JobWatch holds what is known of the job (pure: fed the job, its
events and metrics, tested without a server); follow() polls the SDK and feeds it; a view
draws it: live with rich on a terminal (RichView), as plain lines when stdout goes elsewhere
(LineView), or as JSON lines with --json (JsonView)."""

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, Task, TaskID, TextColumn
from rich.text import Text

from distillery import calls, types
from distillery.cli.output import Output, duration, metric_text, percent
from distillery.client import Client
from distillery.errors import APIConnectionError, ServerError

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
# Polls in a row that may fail (the API restarting, unreachable) before follow() gives up.
MAX_POLL_FAILURES = 10
MARKS = {DONE: Text("✓", style="green"), FAILED: Text("✗", style="red"), CANCELLED: Text("-")}


@dataclass
class StageView:
    """One stage as far as it is known: its state, epochs, the latest epoch's metrics."""

    name: str
    state: str = RUNNING
    epoch: int | None = None
    epochs: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # (the watcher's clock, the epoch) when each new epoch count was seen
    seen: list[tuple[float, int]] = field(default_factory=list)

    def observe(self, now: float) -> None:
        if self.epoch is not None and (not self.seen or self.seen[-1][1] != self.epoch):
            self.seen.append((now, self.epoch))

    @property
    def eta_seconds(self) -> float | None:
        """The stage's time left: the epochs still to run at the pace they were seen to go
        (everything an epoch costs), else at the mean training time of its epochs."""
        if self.state != RUNNING or not self.epochs:
            return None
        left = max(self.epochs - (self.epoch or 0), 0)
        if len(self.seen) > 1:
            (first_time, first), (last_time, last) = self.seen[0], self.seen[-1]
            if last > first:
                return (last_time - first_time) / (last - first) * left
        if not self.epoch_seconds:
            return None
        return statistics.fmean(self.epoch_seconds) * left

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def epoch_text(self) -> str:
        if self.epochs is None and self.epoch is None:
            return ""
        return f"epoch {self.epoch or 0}/{self.epochs or '?'}"

    @property
    def time_text(self) -> str:
        if self.state == RUNNING:
            eta = self.eta_seconds
            return "" if eta is None else f"eta {duration(eta)}"
        return duration(self.seconds) if self.seconds is not None else ""

    def key(self) -> tuple[Any, ...]:
        """What a line about the stage says: a change is worth a new line."""
        return (self.state, self.epoch, self.epochs, metric_text(self.values))

    def document(self, job: types.Job | None) -> dict[str, Any]:
        """The stage as a JSON line (`object`: `job.stage`)."""
        return {
            "object": "job.stage",
            "job_id": job.id if job else None,
            "stage": self.name,
            "state": self.state,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "metrics": self.values,
            "eta_seconds": self.eta_seconds,
            "seconds": self.seconds,
            "job_status": job.status if job else None,
            "job_fraction": job.progress.fraction if job else None,
            "job_eta_seconds": job.progress.eta_seconds if job else None,
        }


class JobWatch:
    """What is known of one job: the job as last polled, and its stages in the order they ran
    (from its `stage` events), each completed from the job's progress and its metrics."""

    def __init__(self, job_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job_id
        self.clock = clock
        self.job: types.Job | None = None
        self.stages: dict[str, StageView] = {}
        self.after: int | None = None  # the last event seen
        self._metrics_seen: tuple[Any, ...] | None = None

    @property
    def finished(self) -> bool:
        return self.job is not None and self.job.status in calls.FINISHED

    @property
    def current(self) -> StageView | None:
        running = [s for s in self.stages.values() if s.state == RUNNING]
        return running[-1] if running else None

    def add_events(self, events: Iterable[types.JobEvent]) -> list[types.JobEvent]:
        """Take the job's events (those seen already are skipped); the new ones, in order."""
        new = []
        for event in events:
            if self.after is not None and event.id <= self.after:
                continue
            self.after = event.id
            new.append(event)
            if event.kind == "stage":
                self._enter(event.message, event.created_at)
        return new

    def _enter(self, name: str, at: datetime) -> None:
        """A stage began: the one before it has ended (a new attempt enters a stage again)."""
        for stage in self.stages.values():
            if stage.state == RUNNING:
                stage.state, stage.ended_at = DONE, at
                if stage.epochs is None and stage.epoch is not None:
                    stage.epochs = stage.epoch
        stage = self.stages.setdefault(name, StageView(name))
        stage.state, stage.started_at, stage.ended_at = RUNNING, at, None

    def update_job(self, job: types.Job) -> None:
        """The job as polled: its progress names the current stage's epoch and epochs."""
        self.job = job
        progress = job.progress
        if progress.stage is not None:
            stage = self.stages.setdefault(progress.stage, StageView(progress.stage))
            if progress.epochs is not None:
                stage.epochs = progress.epochs
            if progress.epoch is not None:
                stage.epoch = max(stage.epoch or 0, progress.epoch)
                stage.observe(self.clock())
        if job.status in calls.FINISHED:
            ended = {"succeeded": DONE, "failed": FAILED}.get(job.status, CANCELLED)
            for stage in self.stages.values():
                if stage.state == RUNNING:
                    stage.state, stage.ended_at = ended, job.finished_at

    def metrics_due(self) -> bool:
        """Whether the metrics may have changed since they were last read: another epoch,
        another stage, or the job's end."""
        return self._metrics_key() != self._metrics_seen

    def _metrics_key(self) -> tuple[Any, ...]:
        progress = self.job.progress if self.job else None
        where = (progress.stage, progress.epoch) if progress else (None, None)
        return (*where, len(self.stages), self.job.status if self.job else None)

    def add_metrics(self, rows: Iterable[types.MetricRow]) -> None:
        """Every epoch's metrics so far (GET /v1/jobs/{id}/metrics): each known stage takes
        its latest epoch's values and its epoch times."""
        self._metrics_seen = self._metrics_key()
        by_stage: dict[str, list[types.MetricRow]] = {}
        for row in rows:
            by_stage.setdefault(row.stage, []).append(row)
        for name, stage_rows in by_stage.items():
            stage = self.stages.get(name)
            if stage is None:  # its `stage` event comes with the next poll
                continue
            stage_rows.sort(key=lambda r: r.epoch)
            last = stage_rows[-1]
            stage.values = dict(last.values)
            stage.epoch = max(stage.epoch or 0, last.epoch)
            stage.observe(self.clock())
            stage.epoch_seconds = [
                float(r.values["epoch_seconds"])
                for r in stage_rows
                if isinstance(r.values.get("epoch_seconds"), int | float)
            ]
            if stage.state != RUNNING and stage.epochs is None:
                stage.epochs = stage.epoch


class View:
    """Draws a JobWatch as it changes; a `with` block around the watching."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def update(self, watch: JobWatch, events: list[types.JobEvent]) -> None:
        """Draw what changed; `events`: the events new since the last update."""
        raise NotImplementedError


def stage_line(stage: StageView, job: types.Job | None) -> str:
    """A plain line on a stage: `[ 45%] distill  epoch 2/30  loss 0.2814 ...  eta 12s`."""
    fraction = job.progress.fraction if job else 0.0
    mark = {RUNNING: "", DONE: "done", FAILED: "FAILED", CANCELLED: "cancelled"}[stage.state]
    parts = [f"[{percent(fraction):>4}] {stage.name:<16}", stage.epoch_text]
    parts += [metric_text(stage.values), stage.time_text, mark]
    return "  ".join(p for p in parts if p).rstrip()


def event_line(event: types.JobEvent) -> str:
    return f"       {event.kind}: {event.message}"


class LineView(View):
    """Plain lines, in the order things happened: a line whenever a stage starts, finishes an
    epoch or ends, and one per event that is not a stage change (status, info, warning)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.shown: dict[str, tuple[Any, ...]] = {}

    def update(self, watch: JobWatch, events: list[types.JobEvent]) -> None:
        names = list(watch.stages)
        for event in events:
            if event.kind == "stage":
                if event.message in names:  # the stages before it have ended
                    self._stages(watch, names[: names.index(event.message)])
                continue
            if event.kind == "status" and event.message.partition(":")[0] in calls.FINISHED:
                self._stages(watch, names)  # the last stage ended with the job
            self.out.line(event_line(event))
        self._stages(watch, names)

    def _stages(self, watch: JobWatch, names: list[str]) -> None:
        for name in names:
            stage = watch.stages[name]
            if self.shown.get(name) != stage.key():
                self.shown[name] = stage.key()
                self.out.line(stage_line(stage, watch.job))


class JsonView(View):
    """JSON lines: each event as the API gives it (`job.event`), a `job.stage` line whenever
    a stage changes, and the job (`job`) last, once it has finished."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.shown: dict[str, tuple[Any, ...]] = {}

    def update(self, watch: JobWatch, events: list[types.JobEvent]) -> None:
        for event in events:
            self.out.json_line(event)
        for name, stage in watch.stages.items():
            if self.shown.get(name) != stage.key():
                self.shown[name] = stage.key()
                self.out.json_line(stage.document(watch.job))
        if watch.finished:
            self.out.json_line(watch.job)


class StageMark(SpinnerColumn):
    """A spinner while the stage runs, then ✓, ✗ or - (done, failed, cancelled)."""

    def render(self, task: Task) -> Text:
        mark = MARKS.get(task.fields.get("state", RUNNING))
        return mark if mark is not None else self.spinner.render(task.get_time())  # type: ignore[return-value]


class RichView(View):
    """The live view on a terminal: the job's row (status, done %, its ETA), then a row per
    stage with a progress bar over its epochs; events print above it as they come."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            StageMark(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[epochs]}"),
            TextColumn("{task.fields[metrics]}"),
            TextColumn("{task.fields[time]}"),
            console=console,
            refresh_per_second=8,
        )
        self.job_task = self.progress.add_task(
            "job", total=1.0, state=RUNNING, epochs="", metrics="", time=""
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def update(self, watch: JobWatch, events: list[types.JobEvent]) -> None:
        for event in events:
            if event.kind != "stage":
                style = "red" if event.kind in ("error", "warning") else "dim"
                self.progress.console.print(
                    event_line(event).strip(), style=style, markup=False, highlight=False
                )
        job = watch.job
        if job is not None:
            state = {"succeeded": DONE, "failed": FAILED, "cancelled": CANCELLED}
            eta = job.progress.eta_seconds
            self.progress.update(
                self.job_task,
                completed=job.progress.fraction,
                state=state.get(job.status, RUNNING),
                epochs=f"{percent(job.progress.fraction):>4}",
                metrics=job.status,
                time="" if eta is None or watch.finished else f"eta {duration(eta)}",
            )
        for stage in watch.stages.values():
            task = self.tasks.get(stage.name)
            if task is None:
                task = self.tasks[stage.name] = self.progress.add_task(
                    stage.name, total=None, state=RUNNING, epochs="", metrics="", time=""
                )
            if stage.epochs:
                total: float | None = stage.epochs
                completed = float(stage.epoch or 0)
            else:  # a stage without epochs: a pulse while it runs, full once it is done
                total = None if stage.state == RUNNING else 1.0
                completed = 0.0 if stage.state == RUNNING else 1.0
            self.progress.update(
                task,
                total=total,
                completed=completed,
                state=stage.state,
                epochs=stage.epoch_text,
                metrics=metric_text(stage.values),
                time=stage.time_text,
            )


def view_for(out: Output) -> View:
    if out.json:
        return JsonView(out)
    if out.rich:
        return RichView(out.console)
    return LineView(out)


def follow(client: Client, job_id: str, view: View, interval: float = 1.0) -> types.Job:
    """Poll the job, its new events and (when they may have changed) its metrics every
    `interval` seconds, drawing each change, until the job has finished; the finished job.
    A few failed polls in a row (the API restarting) are waited out."""
    watch = JobWatch(job_id)
    failures = 0
    with view:
        while True:
            try:
                job = client.jobs.retrieve(job_id)
                events = watch.add_events(
                    client.jobs.events(job_id, after=watch.after, follow=False)
                )
                watch.update_job(job)
                if watch.metrics_due():
                    watch.add_metrics(client.jobs.metrics(job_id))
            except (APIConnectionError, ServerError) as error:
                failures += 1
                if failures > MAX_POLL_FAILURES or (
                    isinstance(error, ServerError) and error.status not in (502, 503, 504)
                ):
                    raise
                time.sleep(min(interval * 2**failures, 10.0))
                continue
            failures = 0
            view.update(watch, events)
            if watch.finished:
                return job
            time.sleep(interval)
