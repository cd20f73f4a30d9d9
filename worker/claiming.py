"""Claiming a delivered job, and holding it, before anything heavy is imported.

Most deliveries that claim nothing are duplicates, or jobs already cancelled or finished; they
end here, in a process that has not loaded torch (seconds per delivery otherwise). A claimed
job's lease is renewed from the moment it is claimed (`holding`), so loading torch (tens of
seconds on a busy or cold node) cannot outlast the lease.

This module knows nothing of what runs the job: the entry points (worker/run.py,
worker/tasks.py) claim, start holding, then import worker.lifecycle (and torch) and run it.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from app import jobs
from app.db import session_scope
from app.logs import job_context
from app.models import Job
from app.settings import Settings
from worker.control import JobControl

log = logging.getLogger(__name__)


def claim_job(job_id: str, settings: Settings) -> tuple[Job, str] | None:
    """(the claimed job, this worker's lease-owner name), or None when there is nothing to run:
    someone else holds it, it ended, or its tenant is at its running limit (then it is left
    queued and undispatched, and the maintenance loop sends it again once a slot frees)."""
    owner = jobs.lease_owner()
    limit = settings.tenant_max_running_jobs
    with session_scope(settings.database_url) as session:
        job = jobs.claim(
            session,
            job_id,
            owner,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            max_running=limit,
        )
        waiting = None
        if job is None:
            waiting = jobs.wait_for_tenant_slot(session, job_id, limit)
    if job is not None:
        return job, owner
    if waiting is None:
        log.info("job %s is not claimable (duplicate delivery or finished): skipping", job_id)
    elif waiting:
        log.info("job %s %s (%d)", job_id, jobs.WAITING_FOR_TENANT_SLOT, limit)
    else:
        log.debug("job %s still %s", job_id, jobs.WAITING_FOR_TENANT_SLOT)
    return None


@contextmanager
def holding(job: Job, owner: str, settings: Settings) -> Iterator[JobControl]:
    """Hold a job this process claimed (as `owner`): its heartbeat renews the lease from now
    until the block ends, and log lines in it name the job. The block runs the job
    (worker.lifecycle.run_claimed) with the JobControl it gets."""
    with job_context(job.id, job.attempt), JobControl(settings, job.id, owner) as control:
        yield control
