"""POST /v1/jobs/estimate on the embedded default: the API checks the spec, a real
`python -m worker.estimate` process does the dry run, and no job is created."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from distillery.types import Estimate
from tests.app.test_api_jobs import SPEC, assert_error
from tests.conftest import make_settings


@pytest.fixture
def sqlite_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return make_settings(sqlite_url, tmp_path)


@pytest.fixture
def estimating_client(sqlite_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_settings)) as client:  # the embedded runner
        yield client


def test_an_estimate_answers_the_work_and_seconds_and_creates_no_job(
    estimating_client: TestClient,
) -> None:
    response = estimating_client.post("/v1/jobs/estimate", json=SPEC)
    assert response.status_code == 200, response.text
    estimate = Estimate.model_validate(response.json())
    # SPEC: 2 teacher epochs and 2 distillation epochs of the digits set in batches of 128
    # (1293 train examples: 11 batches), a baseline as long as the distillation.
    assert estimate.work.teacher_steps == 2 * 11
    assert estimate.work.student_steps == 2 * 2 * 11
    assert estimate.work.soft_label_bytes == 1293 * 10 * 2
    assert estimate.wall_seconds["cpu"].total > 0
    assert listed_jobs(estimating_client) == []


def listed_jobs(client: TestClient) -> list[Any]:
    return list(client.get("/v1/jobs").json()["data"])


def test_a_spec_the_worker_refuses_is_a_422_naming_the_field(
    estimating_client: TestClient,
) -> None:
    spec = {**SPEC, "student": {"arch": "cnn2d", "params": {}}}
    error = assert_error(estimating_client.post("/v1/jobs/estimate", json=spec), 422)
    assert error["param"] == "student.arch"
    assert error["code"] == "invalid_spec"


def test_a_spec_the_api_refuses_never_reaches_a_worker(estimating_client: TestClient) -> None:
    spec = {**SPEC, "student": {"arch": "no-such-arch"}}
    assert_error(estimating_client.post("/v1/jobs/estimate", json=spec), 422, "student.arch")


def test_no_answer_in_time_is_a_503_to_retry(sqlite_settings: Settings) -> None:
    settings = sqlite_settings.model_copy(update={"estimate_timeout_seconds": 0.05})
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs/estimate", json=SPEC)
    error = assert_error(response, 503)
    assert error["code"] == "estimate_unavailable"
    assert response.headers["Retry-After"] == "10"
