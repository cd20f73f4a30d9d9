"""Celery tasks take job ids only; the pipeline opens its own session and reloads the row."""

from app.dispatch import RUN_JOB_TASK
from app.settings import get_settings
from worker.celery_app import app
from worker.claiming import claim_job


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> None:
    # Claim first: a duplicate or finished job is skipped without loading torch. The pipeline
    # is imported only for a job this process will run (the parent never touches CUDA).
    settings = get_settings()
    claimed = claim_job(job_id, settings)
    if claimed is None:
        return
    from worker import pipeline

    pipeline.run_claimed(*claimed, settings)
