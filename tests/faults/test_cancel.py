"""Cancel while queued, mid-epoch, and as the job completes."""

import httpx
import pytest

from tests.faults import checks
from tests.faults.jobs import TINY_JOB, digits_job
from tests.faults.stack import Stack

pytestmark = pytest.mark.services


def cancel(stack: Stack, job_id: str) -> httpx.Response:
    return httpx.post(f"{stack.url}/v1/jobs/{job_id}/cancel", timeout=10)


def test_cancel_while_queued_mid_epoch_and_at_completion(celery_stack: Stack) -> None:
    stack = celery_stack
    stack.start_api()
    stack.start_worker()
    # Long enough to still be training when the worker sees the cancel (a heartbeat later).
    running = stack.submit(digits_job(teacher_epochs=40, batch_size=8))
    waiting = stack.submit(TINY_JOB)
    stack.wait_until_running(running)

    # Queued: cancelled at once, and never run (its delivery, when taken, is skipped).
    response = cancel(stack, waiting)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"

    # Mid-epoch: the worker stops at its next check and the job ends cancelled.
    response = cancel(stack, running)
    assert response.status_code == 200
    assert response.json()["status"] in ("cancelling", "cancelled")
    job = stack.wait(running)
    assert job["status"] == "cancelled", job["error"]
    stack.check(job)
    assert job["progress"]["fraction"] < 1

    job = stack.job(waiting)
    assert job["status"] == "cancelled"
    stack.check(job)
    assert checks.attempts_started(stack.url, waiting) == []

    # At completion: sent once the last distillation epoch is recorded, the cancel races the
    # job's end. Either wins, but the job ends once, and its events agree.
    finishing = stack.submit(digits_job(distill_epochs=3, batch_size=8))

    def last_epoch_done() -> bool:
        job = checks.read(stack.url, f"/v1/jobs/{finishing}")
        if job is None:
            return False
        progress = job["progress"]
        return job["status"] in checks.FINAL_STATUSES or (
            job["stage"] in ("distill", "evaluate", "frontier", "export")
            and (job["stage"] != "distill" or progress["epoch"] == progress["epochs"])
        )

    checks.wait_until(last_epoch_done, 90, "the last epoch", stack.services, interval=0.02)
    response = cancel(stack, finishing)
    job = stack.wait(finishing)
    if response.status_code == 409:
        assert job["status"] == "succeeded"
    else:
        assert response.status_code == 200, response.text
        assert job["status"] in ("cancelled", "succeeded"), job["error"]
    stack.check(job)
