"""The embedded runner's child never outlives the API, and a graceful stop gives the job's
lease back so the next start resumes it at once (issue 6, item 1)."""

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from app import jobs
from app.db import session_scope
from app.dispatch.embedded import EmbeddedRunner
from app.models import DEFAULT_TENANT, JobStatus
from app.settings import Settings
from distillery.types import JobCreate
from distillery.types.protocol import PARENT_PID_ENV
from tests.conftest import MINIMAL_JOB

CHILD = "from worker.run import die_with_parent; die_with_parent(); import time; time.sleep(120)"
PARENT = f"""
import os, subprocess, sys, time
env = {{**os.environ, {PARENT_PID_ENV!r}: str(os.getpid())}}
child = subprocess.Popen([sys.executable, "-c", {CHILD!r}], env=env)
print(child.pid, flush=True)
time.sleep(120)
"""


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_the_worker_child_dies_with_a_sigkilled_api() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    # Killed before or after the child armed itself: either way it must not outlive it.
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10, "exit")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_graceful_stop_gives_the_lease_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("database_url", "artifact_url", "work_dir"):
        monkeypatch.setenv(f"DISTILLERY_{name.upper()}", str(getattr(settings, name)))
    long_job = {
        "dataset": {"name": "digits"},
        "teacher": {"arch": "mlp", "params": {"hidden": [256]}, "train": {"epochs": 2000}},
        "student": {"arch": "mlp"},
    }
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(session, JobCreate.model_validate(long_job), tenant=DEFAULT_TENANT)
    runner = EmbeddedRunner(settings)
    runner.start()

    def running() -> bool:
        with session_scope(settings.database_url) as session:
            row = jobs.unscoped_job(session, job.id)
            return row.status == JobStatus.RUNNING and row.stage == "pretrain_teacher"

    try:
        wait_until(running, 120, "the job to run")
    finally:
        runner.stop()
    with session_scope(settings.database_url) as session:
        # The lease is already expired: the next maintenance pass requeues the job.
        assert jobs.reap_expired(session, max_attempts=3) == [job.id]
        assert jobs.unscoped_job(session, job.id).status == JobStatus.QUEUED


def _spares() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children()
        if "worker.run" in p.cmdline() and "--next" in p.cmdline()
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_spare_worker_process_waits_ready_and_takes_the_next_job(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner keeps one worker process started ahead (pipeline loaded), so a job
    submitted to an idle runner starts at once; the spare is replaced and gone at stop."""
    for name in ("database_url", "artifact_url", "work_dir"):
        monkeypatch.setenv(f"DISTILLERY_{name.upper()}", str(getattr(settings, name)))
    runner = EmbeddedRunner(settings)
    runner.start()
    try:
        wait_until(lambda: len(_spares()) == 1, 30, "a spare worker process")
        first = _spares()[0]
        with session_scope(settings.database_url) as session:
            job, _ = jobs.create_job(
                session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
            )
        runner.send(job.id)

        def claimed_by_the_spare() -> bool:
            with session_scope(settings.database_url) as session:
                events = jobs.list_events(session, job.id, None, 100)
            owner = jobs.lease_owner(first.pid)
            return any((e.data or {}).get("worker") == owner for e in events)

        wait_until(claimed_by_the_spare, 60, "the spare to claim the job")
        # A new spare is already loading for the job after it.
        wait_until(lambda: [p.pid for p in _spares()] not in ([], [first.pid]), 30, "a new spare")
    finally:
        runner.stop()
    assert _spares() == []
