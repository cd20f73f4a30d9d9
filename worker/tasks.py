"""Celery tasks take job ids only; the pipeline opens its own session and reloads the row."""

from app.dispatch import RUN_JOB_TASK
from worker.celery_app import app


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> None:
    # Imported here so the worker's parent process never loads torch (or touches CUDA).
    from worker import pipeline

    pipeline.run(job_id)
