"""Service settings: one Settings class, one instance, env prefix DISTILLERY_."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISTILLERY_", env_file=".env", extra="ignore")

    # Where job records live. SQLite (WAL) by default; postgresql+psycopg://... in production.
    database_url: str = "sqlite:///./distillery.db"
    # PostgreSQL connections a process keeps (pool) and may open beyond them (overflow) for
    # its synchronous work; a thread that finds none free waits for one. Every process of the
    # deployment together must stay under the server's max_connections (README: connection
    # budget): an API process takes pool + overflow + 10 (its async poll path), a worker
    # process 2 or 3 while it runs a job.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=20, ge=0)
    # Unset: the API process runs jobs itself (embedded runner). Set: jobs go to Celery.
    broker_url: str | None = None
    # Where uploads, exported students and reports go: a local folder, or s3://bucket/prefix.
    artifact_url: str = "./artifacts"
    # Endpoint of an S3-compatible server (MinIO, ...); unset: boto3's own AWS_ENDPOINT_URL.
    s3_endpoint_url: str | None = None
    # Worker scratch space: checkpoints and the soft-label store.
    work_dir: str = "./work"
    # A job's work folder goes when the job ends; after a failure it is kept this long for an
    # operator to look at, then `distillery gc` (and the API's maintenance) removes it.
    failed_work_retention_hours: float = Field(default=24.0, ge=0)
    # The soft-label store's byte cap: writing an entry evicts the least recently used first.
    soft_label_store_bytes: int = 20 * 1024**3
    # Teacher forwards (examples, or augmented views) per shard of a job's soft labels: a job
    # with more is labelled in shards any worker of its queue may claim (worker/label_shards.py).
    soft_label_shard_rows: int = Field(default=65536, gt=0)
    # The byte cap of the local copies of an S3 store's files (uploads, teachers) that workers
    # and file checks read: a new copy evicts the least recently used ones not in use.
    download_cache_bytes: int = Field(default=20 * 1024**3, ge=0)
    # Finished jobs older than this are deleted (rows, artifacts, work) by gc; unset: kept.
    job_retention_days: float | None = Field(default=None, ge=0)
    # How often the API's maintenance loop runs the housekeeping (`distillery gc` runs it once).
    gc_interval_seconds: float = Field(default=3600.0, gt=0)
    # Upgrade the database schema when the API starts (compose runs a `migrate` service instead).
    auto_migrate: bool = True

    log_level: str = "INFO"
    # "json": one JSON object per line (time, level, logger, message, job_id, attempt), for a
    # log collector; "text": one readable line (a terminal).
    log_format: Literal["text", "json"] = "text"
    # One log line per HTTP request (`distillery serve`); off: polls would drown the log.
    access_log: bool = False
    # GET /metrics (Prometheus), without an API key: keep it off the public network.
    metrics_enabled: bool = True
    # Series per running job (its id a label, whatever its tenant); off: summed per stage.
    metrics_job_labels: bool = True

    # GET /docs: Swagger UI, pinned and integrity-checked, from a CDN (app/api/docs.py). Off by
    # default: no third-party script runs on the origin where the dashboard signs in.
    api_docs: bool = False

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    # Event streams (GET /v1/jobs/{id}/events?stream=true): each ends after this long with a
    # `reconnect` event, and one API process serves at most this many at once (503 past it).
    event_stream_max_seconds: float = Field(default=3600.0, gt=0)
    max_event_streams: int = Field(default=100, ge=0)
    # `distillery serve` (app/http_protocol.py): request headers are bounded in size (431
    # past it) and must arrive within header_timeout_seconds; a body may pause at most
    # body_idle_timeout_seconds between parts.
    max_header_bytes: int = Field(default=64 * 1024, gt=0)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_idle_timeout_seconds: float = Field(default=60.0, gt=0)

    # "required": every /v1 route needs `Authorization: Bearer <key>`; "off": one tenant.
    auth: Literal["off", "required"] = "off"
    # An upload past this many bytes is answered 413 and its partial data removed.
    max_upload_bytes: int = 8 * 1024**3
    # Per-tenant limits: more running or queued jobs answer 429, more stored bytes 413.
    tenant_max_running_jobs: int = 4
    tenant_max_queued_jobs: int = 100
    tenant_max_stored_bytes: int = 100 * 1024**3
    # Checking an upload runs in a child process under these limits (hostile files).
    file_check_memory_bytes: int = 4 * 1024**3
    file_check_timeout_seconds: float = Field(default=3600.0, gt=0)
    max_image_pixels: int = 4096 * 4096
    max_archive_ratio: float = 100.0
    max_csv_columns: int = 100_000
    # A worker keeps a dataset in memory up to this many bytes; larger ones are read from disk
    # batch by batch.
    worker_memory_bytes: int = 2 * 1024**3

    # Leases: a worker renews its lease every lease_seconds / 3; a lease not renewed in time
    # means the worker died and the reaper requeues the job.
    lease_seconds: float = Field(default=60.0, gt=0)
    # Attempts a job gets: a worker lost, or an infrastructure error (database, disk, store),
    # costs one; past the last the job fails.
    max_attempts: int = Field(default=3, ge=1)
    # A worker whose database is unreachable keeps retrying its writes this long before it
    # gives the attempt up (a blip or a failover should not cost the job an attempt).
    database_retry_seconds: float = Field(default=120.0, ge=0)
    reaper_interval_seconds: float = Field(default=10.0, gt=0)
    # Webhooks (a job's `webhook`): delivered by the API's maintenance pass (every
    # reaper_interval_seconds), each POST given webhook_timeout_seconds; a failed delivery is
    # retried after webhook_backoff_seconds, doubling up to webhook_backoff_max_seconds, and
    # given up after webhook_max_attempts. URLs whose host is (or resolves to) a loopback,
    # private, link-local or reserved address are refused unless webhook_allow_private.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_backoff_seconds: float = Field(default=2.0, ge=0)
    webhook_backoff_max_seconds: float = Field(default=600.0, ge=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_allow_private: bool = False
    # A job sent to the broker but not claimed this long is sent again (a duplicate is skipped
    # by the claim). A broker that restarted without its data is noticed on the next
    # maintenance pass instead, and every job it held is sent again at once.
    resend_unclaimed_after_seconds: float = Field(default=3600.0, gt=0)
    # The embedded runner polls for queued jobs this often when nothing wakes it.
    runner_poll_seconds: float = Field(default=2.0, gt=0)
    # How often the training loop checks the cancel flag, in optimiser steps.
    cancel_check_steps: int = Field(default=20, ge=1)
    # How often a running job's worker reads its status between lease renewals, so a cancel
    # or a pause is seen within about this long (plus cancel_check_steps steps).
    control_poll_seconds: float = Field(default=1.0, gt=0)
    # Worker processes: intra-op threads for torch (0: torch's default, all cores), and
    # whether training steps go through torch.compile (slower start, faster steps on a GPU).
    torch_threads: int = Field(default=0, ge=0, le=1024)
    torch_compile: bool = False
    # Worker processes on Linux: keep freed tensor memory in the heap (worker/allocator.py)
    # instead of returning it to the OS at every free, which costs page faults at every step.
    malloc_tuning: bool = True
    # Celery: the queue GPU workers consume, and how long Redis keeps an unacked message.
    celery_queue: str = "gpu"
    # What a worker says it runs jobs on (app/fleet.py): "auto" finds NVIDIA GPUs with
    # nvidia-smi (cuda) or none (cpu). A worker also consumes `<celery_queue>.<device>`, where
    # jobs asking for its device kind (`resources.device`) go.
    worker_device: Literal["auto", "cpu", "cuda"] = "auto"
    # A worker announces itself this often; one not heard from in worker_seen_seconds is not
    # counted when a job's `resources` are checked at POST.
    worker_announce_seconds: float = Field(default=30.0, gt=0)
    worker_seen_seconds: float = Field(default=600.0, gt=0)
    # Load tests of the control plane (worker/simulated.py): workers run every job through the
    # real claim, lease, event, metric and artifact protocol with fake training, each epoch
    # this many seconds of sleep.
    simulated_training: bool = False
    simulated_epoch_seconds: float = Field(default=0.2, ge=0)
    celery_visibility_timeout_seconds: int = Field(default=12 * 3600, gt=0)
    # Estimates (POST /v1/jobs/estimate): the queue their workers consume (not the jobs' one,
    # so an estimate never waits behind a running job), where Celery keeps their answers (by
    # default the broker itself when it is Redis, else RabbitMQ's reply queues: "rpc://"),
    # and how long the API waits for one.
    celery_estimate_queue: str = "estimate"
    result_backend_url: str | None = None
    estimate_timeout_seconds: float = Field(default=120.0, gt=0)
    # Whether each job estimates itself after validate (a dry run of a few seconds, recorded
    # in its `cost` with its actual figures beside it when it succeeds).
    job_estimates: bool = True

    @property
    def result_backend(self) -> str:
        if self.result_backend_url:
            return self.result_backend_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return "rpc://"

    @property
    def artifact_root(self) -> Path:
        return Path(self.artifact_url).expanduser().resolve()

    @property
    def work_root(self) -> Path:
        return Path(self.work_dir).expanduser().resolve()

    @property
    def soft_label_root(self) -> Path:
        return self.work_root / "soft_labels"

    @property
    def download_cache_root(self) -> Path:
        return self.work_root / "cache"


class SettingsError(ValueError):
    """A DISTILLERY_* variable (or .env line) has a value the service cannot run with."""


def _env_name(location: tuple[int | str, ...]) -> str:
    return "DISTILLERY_" + str(location[0]).upper() if location else "DISTILLERY_*"


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment (and .env). A bad value stops the process at start,
    naming its variable: DISTILLERY_LEASE_SECONDS=0 would otherwise break workers later."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"{_env_name(error['loc'])}={error['input']!r}: {error['msg']}"
            for error in exc.errors()
        ]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
