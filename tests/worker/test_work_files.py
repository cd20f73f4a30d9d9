"""With a remote store, a job's work files follow it to the next host that runs it."""

from pathlib import Path

import pytest
from sqlalchemy import update

from app.db import session_scope
from app.models import Job, JobStatus
from app.settings import Settings
from app.storage import LocalStore
from tests.worker.test_pipeline import TINY, load, submit
from worker import pipeline


class RemoteLikeStore(LocalStore):
    """A local folder that says it is remote, so work files are pushed and pulled."""

    remote = True


def test_a_job_requeued_to_another_host_resumes_from_the_pushed_work_files(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = sqlite_settings.artifact_url
    monkeypatch.setattr(pipeline, "make_store", lambda *_args: RemoteLikeStore(store_url))
    spec = {**TINY, "export": ["safetensors"]}
    job_id = submit(sqlite_settings, spec)
    pipeline.run(job_id, sqlite_settings)
    work = sorted(p.name for p in (Path(store_url) / "jobs" / job_id / "work").iterdir())
    assert work == [
        "baseline.ckpt",
        "baseline.safetensors",
        "student.ckpt",
        "student.safetensors",
        "teacher.ckpt",
        "teacher.safetensors",
    ]

    # The worker died after the work: requeued, another host (its own empty work folder)
    # takes the job and reuses every stage output instead of training again.
    with session_scope(sqlite_settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    other_host = sqlite_settings.model_copy(update={"work_dir": str(tmp_path / "host-b")})
    pipeline.run(job_id, other_host)
    job, events, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempt == 2
    assert len([e for e in events if "earlier attempt" in e.message]) == 3
    assert len(metrics) == 9  # the first attempt's epochs only: 3 stages x 3 epochs
    assert (tmp_path / "host-b" / "jobs" / job_id / "student.safetensors").exists()
