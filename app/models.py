"""SQLAlchemy tables: job, job_event, metric, artifact, file, job_file, api_key, deleted_job,
label_shard, worker."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# Integer ids autoincrement on SQLite only when the column is exactly INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Naive UTC: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


DEFAULT_TENANT = "default"


class JobStatus:
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Between a pause request and the worker's checkpoint; then paused until resumed.
    PAUSING = "pausing"
    PAUSED = "paused"

    FINISHED = (SUCCEEDED, FAILED, CANCELLED)
    LIVE = (QUEUED, RUNNING, CANCELLING, PAUSING, PAUSED)
    ALL = (*LIVE, *FINISHED)


class Job(Base):
    __tablename__ = "job"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Every row belongs to a tenant; with auth off everything is DEFAULT_TENANT's.
    tenant: Mapped[str] = mapped_column(String(100), default=DEFAULT_TENANT)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # {"estimate": worker.estimate's answer, "actual": what the job did, once it succeeded}.
    cost: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Unique per tenant: two tenants may use the same key.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Set when a dispatcher handed the job to a runner or broker; NULL means "send it again".
    dispatched_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_job_created_at_id", "created_at", "id"),
        Index("ix_job_status", "status"),
        Index("ix_job_tenant_status", "tenant", "status"),
        UniqueConstraint("tenant", "idempotency_key"),
    )


class JobEvent(Base):
    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # status | stage | warning | error | info
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_job_event_job_id_id", "job_id", "id"),)


class JobWebhook(Base):
    """A job's webhook and how far its delivery got: every `status` event of the job up to
    `delivered_event_id` has been delivered (or given up on); the next is tried at
    `next_attempt_at`, by whichever API process holds `lease_expires_at`."""

    __tablename__ = "job_webhook"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    delivered_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_job_webhook_next_attempt_at", "next_attempt_at"),)


class Metric(Base):
    """One row per stage epoch; `values` holds loss, accuracy, temperature, lr, samples/s."""

    __tablename__ = "metric"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(32))
    epoch: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "stage", "epoch"),)


class Artifact(Base):
    __tablename__ = "artifact"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "name"),)


class FileStatus:
    PROCESSING = "processing"
    READY = "ready"
    ERROR = "error"


class File(Base):
    """An upload: a dataset, a teacher (safetensors / ONNX) or precomputed teacher logits.

    `storage_key` is the upload as received; `info` is what the check found in it (rows, input
    shape, classes, ONNX signature, storage keys of the arrays prepared for workers); `error`
    says why it was refused.
    """

    __tablename__ = "file"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), default=DEFAULT_TENANT)
    purpose: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=FileStatus.PROCESSING)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    storage_key: Mapped[str] = mapped_column(String(500))
    # Bytes the prepared arrays take in the store (counted against the tenant's quota).
    prepared_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # A checker holds the file while it checks it; an expired lease means it died.
    lease_expires_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_file_tenant_created_at_id", "tenant", "created_at", "id"),
        Index("ix_file_status", "status"),
    )


class JobFile(Base):
    """Which files a job uses (a file a live job uses cannot be deleted)."""

    __tablename__ = "job_file"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # dataset | transfer | teacher | logits
    role: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_job_file_file_id", "file_id"),)


class ApiKey(Base):
    """An API key: only its sha256 is stored; `prefix` lets `keys list` show which is which."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class DeletedJob(Base):
    """A deleted job's id, for a while: `distillery gc` removes whatever a worker that had lost
    the job (frozen past its lease) wrote under the job's store prefix after the delete."""

    __tablename__ = "deleted_job"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_deleted_job_deleted_at", "deleted_at"),)


class ShardStatus:
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


class LabelShard(Base):
    """One shard of a job's soft labels: teacher forwards `start` to `stop` of the store entry
    `entry`, labelled by whichever worker claims it (leased like a job: a worker that dies
    loses only its shard, which another claims once the lease expires)."""

    __tablename__ = "label_shard"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry: Mapped[str] = mapped_column(String(200))
    start: Mapped[int] = mapped_column(BigInteger)
    stop: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=ShardStatus.PENDING)
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Worker(Base):
    """A worker as it announces itself (app/fleet.py): its device, what the device has, the
    queues it consumes, when it last said so. A job asking for what no worker seen lately
    has is refused at POST."""

    __tablename__ = "worker"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    device: Mapped[str] = mapped_column(String(16))
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    # Each GPU's memory (the smallest, if they differ) for a cuda worker; the host's for cpu.
    memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
