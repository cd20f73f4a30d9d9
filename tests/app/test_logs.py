"""Log lines as a log collector reads them: one JSON object per line, carrying the job when the
line is about one; or one text line for a terminal."""

import contextvars
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi.testclient import TestClient

from app.logs import bind_job, configure_logging, job_context
from app.settings import Settings
from tests.conftest import MINIMAL_JOB

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("worker.pipeline")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after the test."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, names)]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers, logger.level, logger.propagate = handlers, level, propagate


def configure(log_format: Literal["text", "json"]) -> None:
    # The handler writes to sys.stderr as it is now: pytest's capture.
    configure_logging(Settings(log_format=log_format, log_level="INFO"))


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_a_json_line_from_a_worker_carries_the_job(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    log.info("before the job")
    with job_context("job_0123", attempt=2):
        log.warning("epoch %d took %.1f s", 3, 12.5)
        # The heartbeat thread, started with the job's context.
        thread = threading.Thread(
            target=contextvars.copy_context().run, args=(log.warning, "heartbeat failed")
        )
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive()
    log.info("after the job")

    before, epoch, heartbeat, after = json_lines(capsys)
    assert set(epoch) == {"time", "level", "logger", "message", "process", "job_id", "attempt"}
    assert epoch["message"] == "epoch 3 took 12.5 s"
    assert (epoch["level"], epoch["logger"]) == ("WARNING", "worker.pipeline")
    assert (epoch["job_id"], epoch["attempt"]) == ("job_0123", 2)
    assert epoch["time"].endswith("+00:00")
    assert (heartbeat["job_id"], heartbeat["attempt"]) == ("job_0123", 2)
    assert "job_id" not in before and "job_id" not in after


@pytest.mark.usefixtures("restore_logging")
def test_a_json_line_keeps_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    bind_job("job_4567")
    try:
        try:
            raise OSError("No space left on device: '/data/work/job_4567/ckpt.pt'")
        except OSError:
            log.exception("job job_4567 failed in distill")
    finally:
        bind_job(None)
    (line,) = json_lines(capsys)
    assert line["job_id"] == "job_4567" and "attempt" not in line
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "No space left on device" in line["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_a_text_line_names_the_job(capsys: pytest.CaptureFixture[str]) -> None:
    configure("text")
    with job_context("job_0123", attempt=1):
        log.info("distill: epoch 1/5")
    log.info("idle")
    job_line, idle = capsys.readouterr().err.splitlines()
    assert job_line.endswith(" INFO worker.pipeline [job job_0123 attempt 1]: distill: epoch 1/5")
    assert idle.endswith(" INFO worker.pipeline: idle")


@pytest.mark.usefixtures("restore_logging")
def test_uvicorn_lines_use_the_format_and_access_logs_stay_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # As uvicorn leaves its loggers with access logs off (its own handlers, access cleared).
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.handlers, uvicorn.propagate = [logging.StreamHandler()], False
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate = [], False
    configure("json")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    assert not access.hasHandlers()  # uvicorn writes an access line only when this is True
    (line,) = json_lines(capsys)
    assert (line["logger"], line["message"]) == ("uvicorn.error", "Application startup complete.")


def test_the_embedded_runners_child_logs_json_with_the_job(
    client: TestClient, settings: Settings
) -> None:
    """`python -m worker.run <id>` (what the embedded runner starts) for a job cancelled before
    it ran: its one line says so, as JSON, with the job's id."""
    job_id = client.post("/v1/jobs", json=MINIMAL_JOB).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    env = {
        **os.environ,
        "DISTILLERY_DATABASE_URL": settings.database_url,
        "DISTILLERY_LOG_FORMAT": "json",
        "DISTILLERY_LOG_LEVEL": "INFO",
    }
    child = subprocess.run(
        [sys.executable, "-m", "worker.run", job_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    lines = [json.loads(line) for line in child.stderr.splitlines()]
    skipped = [line for line in lines if "not claimable" in line["message"]]
    assert len(skipped) == 1, child.stderr
    assert skipped[0]["job_id"] == job_id
    assert skipped[0]["logger"] == "worker.claiming"
