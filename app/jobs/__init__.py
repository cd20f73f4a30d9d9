"""The job service: the only code that changes job rows, so every status change is a
conditional UPDATE and leaves a `job_event` row behind.

- errors: JobNotFound, JobConflict, LeaseLost, IdempotencyConflict, QuotaExceeded
- spec: resolve_spec (check a JobCreate against the catalog), request_hash
- rows: RUNNING_STATUSES, unscoped_job (any tenant's job, by id)
- service: the API's commands (create, get, list, cancel, pause, resume, delete, ...), each
  for one tenant
- queue: dispatch bookkeeping, the tenant's running count and claim lock
- lease: the worker's protocol (claim, heartbeat, writes while holding, finish, requeue) and
  lease_ended, what an attempt that ended unfinished leaves the job as
- recovery: the reaper
- shards: a job's soft labels in shards other workers claim (imported as app.jobs.shards)

This package re-exports their public names (`from app import jobs; jobs.create_job(...)`);
its modules import one another, never the package.
"""

from app.jobs.errors import (
    IdempotencyConflict,
    JobConflict,
    JobNotFound,
    LeaseLost,
    QuotaExceeded,
)
from app.jobs.lease import (
    WAITING_FOR_TENANT_SLOT,
    add_artifact,
    add_event,
    claim,
    epochs_recorded,
    fail_unclaimed,
    finish,
    held_status,
    lease_ended,
    lease_owner,
    mark_paused,
    record_epoch,
    release_lease,
    renew_lease,
    requeue,
    set_cost,
    set_progress,
    set_stage,
    wait_for_tenant_slot,
)
from app.jobs.queue import (
    TENANT_LOCK_SPACE,
    lock_tenant,
    mark_dispatched,
    oldest_queued_job_id,
    sending,
    tenant_running,
    unclaimed_job_ids,
    undispatched_job_ids,
)
from app.jobs.recovery import reap_expired
from app.jobs.rows import RUNNING_STATUSES, unscoped_job
from app.jobs.service import (
    cancel_job,
    check_quota,
    create_job,
    delete_job,
    delete_unscoped_job,
    get_artifact,
    get_job,
    list_artifacts,
    list_events,
    list_jobs,
    list_metrics,
    new_job_id,
    pause_job,
    resume_job,
)
from app.jobs.spec import request_hash, resolve_spec

__all__ = [
    "RUNNING_STATUSES",
    "TENANT_LOCK_SPACE",
    "WAITING_FOR_TENANT_SLOT",
    "IdempotencyConflict",
    "JobConflict",
    "JobNotFound",
    "LeaseLost",
    "QuotaExceeded",
    "add_artifact",
    "add_event",
    "cancel_job",
    "check_quota",
    "claim",
    "create_job",
    "delete_job",
    "delete_unscoped_job",
    "epochs_recorded",
    "fail_unclaimed",
    "finish",
    "get_artifact",
    "get_job",
    "held_status",
    "lease_ended",
    "lease_owner",
    "list_artifacts",
    "list_events",
    "list_jobs",
    "list_metrics",
    "lock_tenant",
    "mark_dispatched",
    "mark_paused",
    "new_job_id",
    "oldest_queued_job_id",
    "pause_job",
    "reap_expired",
    "record_epoch",
    "release_lease",
    "renew_lease",
    "request_hash",
    "requeue",
    "resolve_spec",
    "resume_job",
    "sending",
    "set_cost",
    "set_progress",
    "set_stage",
    "tenant_running",
    "unclaimed_job_ids",
    "undispatched_job_ids",
    "unscoped_job",
    "wait_for_tenant_slot",
]
