"""Jobs run in this process, as the benchmarks and example scripts run them: SQLite, a local
store and work folder in a temporary directory, each job through the real pipeline."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app import jobs
from app.db import session_scope, upgrade_database
from app.models import DEFAULT_TENANT, Job
from app.settings import Settings
from distillery.types import JobCreate
from worker import lifecycle


@contextmanager
def temporary_settings() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/jobs.sqlite"
        upgrade_database(url)
        yield Settings(
            database_url=url,
            artifact_url=f"{tmp}/artifacts",
            work_dir=f"{tmp}/work",
            broker_url=None,
            auto_migrate=False,
        )


def run_job(settings: Settings, spec: dict[str, Any]) -> tuple[Job, list[Any]]:
    """Create the job, run it to its end here; (the job, its metrics). Fails unless it
    succeeded."""
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(session, JobCreate.model_validate(spec), tenant=DEFAULT_TENANT)
        job_id = job.id
    lifecycle.run(job_id, settings)
    with session_scope(settings.database_url) as session:
        done = jobs.unscoped_job(session, job_id)
        assert done.status == "succeeded", done.error
        return done, jobs.list_metrics(session, job_id)
