"""Prometheus metrics: HTTP latency measured in each API process, and job gauges read from the
database at scrape time (the same answer from any process).

HTTP histograms are per process. With several uvicorn workers each scrape would reach one of
them; so every worker writes its samples to files in the folder PROMETHEUS_MULTIPROC_DIR names,
and a scrape adds them all up. `distillery serve --workers N` makes a fresh folder for this
itself; under another process manager, set the variable to an empty folder before the workers
start.
"""

import logging
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.models import Job, JobEvent, JobStatus, utcnow
from app.models import Metric as EpochMetric

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Stage durations are taken over jobs that succeeded this recently (at most this many jobs).
STAGE_WINDOW = timedelta(hours=1)
STAGE_WINDOW_JOBS = 1000
STAGE_QUANTILES = (0.5, 0.9, 1.0)

# A route label for a request no route matched (404s, and bodies refused before routing):
# raw paths would make a series per job id or per scanner's guess.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_SECONDS = Histogram(
    "distillery_http_request_duration_seconds",
    "Seconds from a request's arrival to its response's headers (an event stream's life is not "
    "counted), by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


@contextmanager
def shared_across_workers(workers: int) -> Iterator[None]:
    """For `serve --workers N` (N > 1) without PROMETHEUS_MULTIPROC_DIR: a fresh folder for the
    workers' HTTP metrics, named to them in that variable and removed when serve ends."""
    if workers <= 1 or multiprocess_dir():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="distillery-metrics-") as folder:
        os.environ[MULTIPROC_ENV] = folder
        try:
            yield
        finally:
            del os.environ[MULTIPROC_ENV]


class HttpMetrics:
    """Pure ASGI middleware timing every HTTP request into HTTP_SECONDS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        headers_sent: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, headers_sent
            if message["type"] == "http.response.start":
                status, headers_sent = message["status"], time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # The router puts the matched route in the scope; its path_format is the template.
            template = getattr(scope.get("route"), "path_format", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            HTTP_SECONDS.labels(method, template, str(status)).observe(
                (headers_sent or time.perf_counter()) - started
            )


class JobsCollector(Collector):
    """Job gauges, read with a few cheap queries at each scrape. When the database does not
    answer, `distillery_database_up` is 0 and the job gauges are left out."""

    def __init__(self, session_factory: Callable[[], Session], job_labels: bool = True) -> None:
        self.session_factory = session_factory
        self.job_labels = job_labels

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "distillery_database_up", "1 if the database answered this scrape's queries, else 0."
        )
        try:
            with self.session_factory() as session:
                families = list(job_metrics(session, self.job_labels))
        except Exception as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def job_metrics(session: Session, job_labels: bool = True) -> Iterator[Metric]:
    """The job gauges; `job_labels` False names no job (series per stage, not per job)."""
    now = utcnow()
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    jobs = GaugeMetricFamily(
        "distillery_jobs", "Jobs in the database by status.", labels=["status"]
    )
    for status in sorted({*JobStatus.ALL, *counts}):
        jobs.add_metric([status], counts.get(status, 0))
    yield jobs

    oldest = session.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED))
    yield GaugeMetricFamily(
        "distillery_queue_depth", "Jobs queued (not yet running).", counts.get(JobStatus.QUEUED, 0)
    )
    yield GaugeMetricFamily(
        "distillery_queue_oldest_age_seconds",
        "Seconds since the oldest queued job was submitted (0 when none is queued).",
        (now - oldest).total_seconds() if oldest is not None else 0.0,
    )

    yield from stage_duration_metrics(session, now)

    yield samples_per_second(session, job_labels)


def samples_per_second(session: Session, job_labels: bool) -> Metric:
    """Each running job's last recorded epoch rate, by job and stage; or, without job labels,
    their sum per stage."""
    name = "distillery_training_samples_per_second"
    rates: dict[tuple[str, ...], float] = defaultdict(float)
    for job_id, stage, values in latest_epochs_of_running_jobs(session):
        rate = values.get("samples_per_second") if isinstance(values, dict) else None
        if isinstance(rate, int | float) and math.isfinite(rate):
            rates[(job_id, stage) if job_labels else (stage,)] += float(rate)
    if job_labels:
        speed = GaugeMetricFamily(
            name,
            "Samples per second of the last epoch each running job recorded, by job and stage.",
            labels=["job_id", "stage"],
        )
    else:
        speed = GaugeMetricFamily(
            name,
            "Samples per second of the last epoch each running job recorded, summed over the "
            "running jobs, by stage.",
            labels=["stage"],
        )
    for labels, rate in sorted(rates.items()):
        speed.add_metric(list(labels), rate)
    return speed


def latest_epochs_of_running_jobs(session: Session) -> list[Any]:
    running = (JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.PAUSING)
    latest = (
        select(func.max(EpochMetric.id))
        .join(Job, Job.id == EpochMetric.job_id)
        .where(Job.status.in_(running))
        .group_by(EpochMetric.job_id)
    )
    query = select(EpochMetric.job_id, EpochMetric.stage, EpochMetric.values).where(
        EpochMetric.id.in_(latest)
    )
    return list(session.execute(query).all())


def stage_duration_metrics(session: Session, now: datetime) -> Iterator[Metric]:
    durations = stage_durations(session, now - STAGE_WINDOW)
    quantiles = GaugeMetricFamily(
        "distillery_stage_duration_seconds",
        "Wall-clock seconds jobs spent in each pipeline stage (from its stage event to the next "
        "stage or status event, summed over attempts), over jobs that succeeded in the last "
        f"{STAGE_WINDOW.total_seconds():.0f} s: quantile 0.5, 0.9 and 1 (the longest).",
        labels=["stage", "quantile"],
    )
    jobs = GaugeMetricFamily(
        "distillery_stage_duration_jobs",
        "Jobs that distillery_stage_duration_seconds is taken over, by stage.",
        labels=["stage"],
    )
    for stage, seconds in sorted(durations.items()):
        seconds.sort()
        for q in STAGE_QUANTILES:
            quantiles.add_metric([stage, f"{q:g}"], quantile(seconds, q))
        jobs.add_metric([stage], len(seconds))
    yield quantiles
    yield jobs


def stage_durations(session: Session, since: datetime) -> dict[str, list[float]]:
    """Per stage, the seconds each job that succeeded after `since` spent in it."""
    recent = (
        select(Job.id)
        .where(Job.status == JobStatus.SUCCEEDED, Job.finished_at >= since)
        .order_by(Job.finished_at.desc())
        .limit(STAGE_WINDOW_JOBS)
    )
    events = session.execute(
        select(JobEvent.job_id, JobEvent.kind, JobEvent.message, JobEvent.created_at)
        .where(
            JobEvent.job_id.in_(recent.scalar_subquery()), JobEvent.kind.in_(["stage", "status"])
        )
        .order_by(JobEvent.job_id, JobEvent.id)
    ).all()
    return summed_stage_seconds(events)


def summed_stage_seconds(events: Iterable[Any]) -> dict[str, list[float]]:
    """(job_id, kind, message, created_at) rows, by job then in order -> per stage, each job's
    seconds in it. A stage lasts from its event to the job's next stage or status event."""
    per_job: dict[tuple[str, str], float] = defaultdict(float)
    current: tuple[str, str, datetime] | None = None
    for job_id, kind, message, created_at in events:
        if current is not None and current[0] == job_id:
            per_job[current[0], current[1]] += (created_at - current[2]).total_seconds()
        current = (job_id, message, created_at) if kind == "stage" else None
    durations: dict[str, list[float]] = defaultdict(list)
    for (_job, stage), seconds in per_job.items():
        durations[stage].append(seconds)
    return dict(durations)


def quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def exposition(session_factory: Callable[[], Session], job_labels: bool = True) -> bytes:
    """The text a scrape gets: HTTP latency (this process's, or every worker's in multiprocess
    mode), this process's resource use (single-process mode only) and the job gauges (per job
    too, unless `job_labels` is False)."""
    registry = CollectorRegistry(auto_describe=False)
    folder = multiprocess_dir()
    if folder:
        MultiProcessCollector(registry, path=folder)
    else:
        registry.register(HTTP_SECONDS)
        registry.register(ProcessCollector(registry=None))
    registry.register(JobsCollector(session_factory, job_labels))
    return generate_latest(registry)
