"""The embedded service with its artifacts in an S3 bucket (a real S3-protocol server)."""

from pathlib import Path

import httpx

from tests.conftest import S3_TEST_ENV, s3_client
from tests.e2e.conftest import Service, free_port, start, uvicorn_argv, wait_for_job, wait_ready
from tests.e2e.jobs import DIGITS_JOB, check_downloaded_student


def test_digits_job_with_artifacts_in_s3(
    services: list[Service], tmp_path: Path, s3_server: str, s3_bucket_url: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **S3_TEST_ENV,
        "DISTILLERY_DATABASE_URL": f"sqlite:///{tmp_path / 'distillery.db'}",
        "DISTILLERY_ARTIFACT_URL": s3_bucket_url,
        "DISTILLERY_S3_ENDPOINT_URL": s3_server,
        "DISTILLERY_WORK_DIR": str(tmp_path / "work"),
        "DISTILLERY_BROKER_URL": "",
    }
    api = start(services, "api", uvicorn_argv(port), env, tmp_path)
    wait_ready(url, api)

    created = httpx.post(f"{url}/v1/jobs", json=DIGITS_JOB, headers={"Idempotency-Key": "e2e-s3"})
    assert created.status_code == 201, created.text
    job = wait_for_job(url, created.json()["id"], 240, services)
    assert job["status"] == "succeeded", job["error"]
    check_downloaded_student(url, job, tmp_path)

    # Every listed artifact is an object under the bucket's prefix, of the listed size.
    bucket, prefix = s3_bucket_url.removeprefix("s3://").split("/", 1)
    listing = s3_client(s3_server).list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    objects = {o["Key"]: o["Size"] for o in listing.get("Contents", [])}
    artifacts = httpx.get(f"{url}/v1/jobs/{job['id']}/artifacts").json()["data"]
    for artifact in artifacts:
        key = f"{prefix}/jobs/{job['id']}/{artifact['name']}"
        assert objects.get(key) == artifact["bytes"], (key, sorted(objects))
    # Nothing was written next to the service instead.
    assert not (tmp_path / "artifacts").exists()
