"""Worker processes: the embedded API SIGKILLed, a Celery worker SIGTERMed, a job that
crashes every process that runs it."""

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import Service
from tests.faults import checks
from tests.faults.jobs import LONG_JOB, digits_job
from tests.faults.stack import Stack

pytestmark = pytest.mark.services


def job_processes(api: Service) -> list[psutil.Process]:
    """The embedded runner's `python -m worker.run` children of an API process: the one
    running the job, and the spare waiting for the next."""
    children = psutil.Process(api.process.pid).children()
    return [child for child in children if "worker.run" in child.cmdline()]


def has_exited(process: psutil.Process) -> bool:
    """Ended (a zombie not yet reaped by its new parent has ended too)."""
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_the_embedded_api_killed_mid_job_resumes_it_once(embedded_stack: Stack) -> None:
    """SIGKILL the API in the middle of a job: its job process dies with it, and the restarted
    API resumes the job from its checkpoint (attempt 2) and finishes it once."""
    stack = embedded_stack
    api = stack.start_api("api-1")
    job_id = stack.submit(LONG_JOB)
    stack.wait_until_running(job_id, epoch=2)  # epoch 1's checkpoint is on disk
    children = job_processes(api)
    assert children

    os.kill(api.process.pid, signal.SIGKILL)
    api.process.wait()
    checks.wait_until(
        lambda: all(has_exited(child) for child in children),
        15,
        "the killed API's worker processes to end",
        stack.services,
    )

    stack.start_api("api-2")
    job = stack.wait(job_id)
    assert job["status"] == "succeeded", (job["error"], stack.logs())
    assert checks.attempts_started(stack.url, job_id) == [1, 2]
    messages = [e["message"] for e in checks.events(stack.url, job_id)]
    assert any(m.startswith("pretrain_teacher: resuming after epoch") for m in messages)
    stack.check(job)


def test_a_job_survives_its_celery_worker_stopped(celery_stack: Stack) -> None:
    """SIGTERM (warm shutdown) the Celery worker in the middle of a job, then start another:
    the job succeeds, once."""
    stack = celery_stack
    stack.start_api()
    first = stack.start_worker("worker-1")
    job_id = stack.submit(LONG_JOB)
    stack.wait_until_running(job_id)

    first.process.send_signal(signal.SIGTERM)
    checks.wait_until(
        lambda: first.process.poll() is not None, 120, "worker-1 to stop", stack.services
    )
    stack.start_worker("worker-2")

    job = stack.wait(job_id)
    assert job["status"] == "succeeded", (job["error"], stack.logs())
    stack.check(job)


# Every process of the crashing worker is killed by the kernel (SIGXCPU, then SIGKILL) after
# this many seconds of CPU: the Celery parent, which uses little, survives; each job process,
# which imports torch and trains, dies mid-job, every attempt, without cleaning anything up.
CPU_SECONDS = 10
MAX_ATTEMPTS = 2


def test_a_job_that_always_crashes_its_worker_fails_at_max_attempts(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """Each attempt's process is killed mid-job (a crash: no exception, no cleanup). The job
    is not retried forever: it ends failed after MAX_ATTEMPTS, with an error that says so."""
    stack = Stack.celery(
        services, tmp_path, postgres_url, redis_url, DISTILLERY_MAX_ATTEMPTS=str(MAX_ATTEMPTS)
    )
    stack.start_api()
    worker = stack.start_worker(
        wrapper=["prlimit", f"--cpu={CPU_SECONDS}:{CPU_SECONDS + 5}", "--core=0"]
    )
    # Far more training than MAX_ATTEMPTS processes can do before the kernel kills them.
    job_id = stack.submit(digits_job(teacher_epochs=1000, batch_size=8))

    job = stack.wait(job_id, timeout=240)
    assert job["status"] == "failed", stack.logs()
    assert job["attempt"] == MAX_ATTEMPTS
    assert checks.attempts_started(stack.url, job_id) == list(range(1, MAX_ATTEMPTS + 1))
    message = job["error"]["message"]
    assert message and "Traceback" not in message and str(tmp_path) not in message
    stack.check(job)
    # Its job processes crashed (nothing else failed), and the worker itself is still up.
    assert worker.log.read_text().count("Worker exited prematurely") >= MAX_ATTEMPTS
    assert worker.process.poll() is None
