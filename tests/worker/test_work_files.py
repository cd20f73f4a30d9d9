"""With a remote store, a job's work files follow it to the next host that runs it, and are
removed from the store once the job has ended (however it ended); a worker that no longer
holds its job writes nothing there."""

import errno
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app import jobs
from app.db import session_scope
from app.housekeeping import delete_job
from app.models import DEFAULT_TENANT, Job, JobStatus, utcnow
from app.settings import Settings
from app.store import make_store
from app.store.local import LocalStore
from tests.conftest import make_settings
from tests.worker.test_pipeline import TINY, load, submit
from worker import job_context as job_context_module
from worker import lifecycle, packaging
from worker.control import LeaseLost
from worker.stage_outputs import StageOutputs
from worker.stages.evaluate import Evaluate


class RemoteLikeStore(LocalStore):
    """A local folder that says it is remote, so work files are pushed and pulled."""

    remote = True


def test_a_job_requeued_to_another_host_resumes_from_the_pushed_work_files(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = sqlite_settings.artifact_url
    monkeypatch.setattr(job_context_module, "make_store", lambda *_args: RemoteLikeStore(store_url))
    spec = {**TINY, "export": ["safetensors"]}
    job_id = submit(sqlite_settings, spec)

    # The first host loses the job after all the training (it was presumed dead): its work
    # files stay in the store for the host that takes the job next.
    def lost(*_args: object) -> None:
        raise LeaseLost(job_id)

    with monkeypatch.context() as patch:
        patch.setattr(Evaluate, "run", lost)
        lifecycle.run(job_id, sqlite_settings)
    work_folder = Path(store_url) / "jobs" / job_id / "work"
    work = sorted(p.name for p in work_folder.iterdir())
    assert work == [
        "baseline.ckpt",
        "baseline.safetensors",
        "student.ckpt",
        "student.safetensors",
        "teacher.ckpt",
        "teacher.safetensors",
    ]

    # Requeued, another host (its own empty work folder) takes the job and reuses every stage
    # output instead of training again.
    with session_scope(sqlite_settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    other_host = sqlite_settings.model_copy(update={"work_dir": str(tmp_path / "host-b")})
    lifecycle.run(job_id, other_host)
    job, events, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempt == 2
    assert len([e for e in events if "earlier attempt" in e.message]) == 3
    assert len(metrics) == 9  # the first attempt's epochs only: 3 stages x 3 epochs
    # Done: the work files left the store and host B, which finished the job; the artifacts
    # stay, and so does host A's folder, which gc removes as the job's status says it may.
    assert not (tmp_path / "host-b" / "jobs" / job_id).exists()
    assert not work_folder.exists()
    assert RemoteLikeStore(store_url).list_keys(f"jobs/{job_id}/") == [
        f"jobs/{job_id}/frontier.svg",
        f"jobs/{job_id}/manifest.json",
        f"jobs/{job_id}/metrics.csv",
        f"jobs/{job_id}/report.json",
        f"jobs/{job_id}/student.safetensors",
    ]
    assert (Path(sqlite_settings.work_dir) / "jobs" / job_id / "teacher.ckpt").exists()


def test_a_failed_job_leaves_no_work_files_in_the_store(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = sqlite_settings.artifact_url
    monkeypatch.setattr(job_context_module, "make_store", lambda *_args: RemoteLikeStore(store_url))
    job_id = submit(sqlite_settings, {**TINY, "baseline": False, "export": ["safetensors"]})

    def broken(*_args: object) -> None:
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(Evaluate, "run", broken)
    lifecycle.run(job_id, sqlite_settings)
    job = load(sqlite_settings, job_id)[0]
    assert job.status == JobStatus.FAILED and "evaluation broke" in job.error["message"]
    assert RemoteLikeStore(store_url).list_keys(f"jobs/{job_id}/") == []


def test_a_job_failed_by_an_infrastructure_error_on_its_last_attempt_leaves_no_work_files(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An infrastructure error requeues the job with its work files; on the last attempt it
    fails the job instead, and then nothing will resume from them (they used to stay)."""
    settings = sqlite_settings.model_copy(update={"max_attempts": 1})
    store_url = settings.artifact_url
    monkeypatch.setattr(job_context_module, "make_store", lambda *_args: RemoteLikeStore(store_url))
    job_id = submit(settings, {**TINY, "baseline": False, "export": ["safetensors"]})

    def disk_full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Evaluate, "run", disk_full)
    lifecycle.run(job_id, settings)
    job = load(settings, job_id)[0]
    assert job.status == JobStatus.FAILED and job.error["code"] == "infrastructure_error"
    assert RemoteLikeStore(store_url).list_keys(f"jobs/{job_id}/") == []


@pytest.mark.parametrize("store_kind", ["local", "s3"])
@pytest.mark.parametrize("write", ["checkpoint", "artifact"])
def test_a_worker_that_resumes_after_its_job_was_deleted_writes_nothing_to_the_store(
    postgres_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    store_kind: str,
    write: str,
) -> None:
    """The worker is frozen (SIGSTOP) just before it writes to the store (a stage's weights
    pushed to S3, an exported artifact): its lease expires, the reaper fails the job, the user
    deletes it; then the worker carries on. The write finds the job no longer held and stops,
    instead of leaving an object under the deleted job's prefix. (The heartbeat, which might
    notice first, is kept out of it: it polls once an hour here.)"""
    settings = make_settings(postgres_url, tmp_path).model_copy(
        update={"lease_seconds": 3600, "control_poll_seconds": 3600, "max_attempts": 1}
    )
    if store_kind == "s3":
        settings = settings.model_copy(
            update={
                "artifact_url": request.getfixturevalue("s3_bucket_url"),
                "s3_endpoint_url": request.getfixturevalue("s3_server"),
            }
        )
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    job_id = submit(settings, {**TINY, "baseline": False, "export": ["safetensors"]})

    def frozen_then_deleted() -> None:
        with session_scope(settings.database_url) as session:
            expired = utcnow() - timedelta(days=1)
            session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=expired))
            session.commit()
            jobs.reap_expired(session, max_attempts=settings.max_attempts)
            # By the API, on its own host: the worker's work folder stays.
            api_host = settings.model_copy(update={"work_dir": str(tmp_path / "api-host")})
            delete_job(api_host, store, session, job_id, DEFAULT_TENANT)

    owner, name = (StageOutputs, "push") if write == "checkpoint" else (packaging, "_upload")
    original = getattr(owner, name)

    def write_after_the_freeze(*args: object) -> object:
        frozen_then_deleted()
        monkeypatch.setattr(owner, name, original)
        return original(*args)

    monkeypatch.setattr(owner, name, write_after_the_freeze)
    lifecycle.run(job_id, settings)
    with session_scope(settings.database_url) as session:
        assert session.get(Job, job_id) is None
    assert store.list_keys(f"jobs/{job_id}/") == []
