"""A delivery that claims nothing (a cancelled, finished or duplicate job) is skipped before
torch is imported, in the Celery task and in `python -m worker.run` (issue 6)."""

import ast
import os
import subprocess
import sys

import pytest

from app import jobs
from app.db import session_scope
from app.models import DEFAULT_TENANT, JobStatus
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB

ENTRY_POINTS = {
    "celery task": "from worker.tasks import run_job; run_job(sys.argv[1])",
    "worker.run": "from worker.run import main; main([sys.argv[1]])",
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_cancelled_job_is_skipped_without_loading_torch(settings: Settings, entry: str) -> None:
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )
        jobs.cancel_job(session, job.id, DEFAULT_TENANT)
    code = (
        f"import sys; {ENTRY_POINTS[entry]}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    env = {**os.environ, "DISTILLERY_DATABASE_URL": settings.database_url}
    out = subprocess.run(
        [sys.executable, "-c", code, job.id], env=env, capture_output=True, text=True, check=True
    )
    assert ast.literal_eval(out.stdout.strip().splitlines()[-1]) == []
    with session_scope(settings.database_url) as session:
        assert jobs.unscoped_job(session, job.id).status == JobStatus.CANCELLED
