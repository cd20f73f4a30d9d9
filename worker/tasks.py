"""Celery tasks take job ids only; the pipeline opens its own session and reloads the row."""

import logging
from typing import Any

from celery import Task

from app import jobs
from app.db import is_database_unreachable, session_scope
from app.jobs import shards
from app.settings import get_settings
from distillery.types.protocol import ESTIMATE_TASK, LABEL_SHARDS_TASK, RUN_JOB_TASK
from worker.celery_app import app
from worker.claiming import claim_job, holding

log = logging.getLogger(__name__)

# Waits between claim attempts while the database is unreachable: 1, 2, 4, ... up to a minute.
CLAIM_RETRY_MAX_SECONDS = 60


@app.task(name=RUN_JOB_TASK, bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> None:
    # Claim first: a duplicate or finished job is skipped without loading torch. The pipeline
    # is imported only for a job this process will run (the parent never touches CUDA).
    settings = get_settings()
    try:
        claimed = claim_job(job_id, settings)
    except Exception as exc:
        if not is_database_unreachable(exc):
            raise
        # Acknowledging now would lose the job: send it to ourselves again, later.
        delay = min(CLAIM_RETRY_MAX_SECONDS, 2 ** min(self.request.retries, 6))
        log.warning("cannot reach the database to claim %s; retrying in %d s", job_id, delay)
        raise self.retry(countdown=delay, exc=exc) from None
    if claimed is not None:
        job, owner = claimed
        with holding(job, owner, settings) as control:
            # Only now the pipeline (and torch), with the lease already renewed meanwhile.
            from worker import lifecycle

            lifecycle.run_claimed(job, control, settings)


@app.task(name=LABEL_SHARDS_TASK)
def label_shards(job_id: str) -> None:
    """Label shards of a job another worker runs (worker/shard_worker.py). Claim first: once
    every shard is taken (most deliveries, on a fleet with few jobs to label) nothing else
    happens, and torch is never imported for it."""
    settings = get_settings()
    owner = jobs.lease_owner()
    with session_scope(settings.database_url) as session:
        claimed = shards.claim_shard(session, job_id, owner, settings.lease_seconds)
    if claimed is None:
        log.info("job %s has no soft-label shard left to claim", job_id)
        return
    from worker.shard_worker import help_label

    labelled = help_label(job_id, claimed, owner, settings)
    log.info("labelled %d soft-label shards of %s", labelled, job_id)


@app.task(name=ESTIMATE_TASK, ignore_result=False)
def estimate(spec: dict[str, Any], tenant: str) -> dict[str, Any]:
    """A resolved spec's estimate (worker/estimate.py), or {"error": ...} for a spec validate
    refuses; the API waits for the answer."""
    from worker.estimate import answer

    return answer(spec, tenant, get_settings())
