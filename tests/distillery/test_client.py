"""The synchronous SDK against a real API process: a job from submit to verified download,
lists across pages, uploads with progress, and the API's errors as typed exceptions."""

import csv
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distillery import (
    AuthenticationError,
    ChecksumMismatch,
    Client,
    Conflict,
    NotFound,
    UnprocessableEntity,
)
from distillery import types as schemas
from tests.distillery.conftest import STAGES, TINY_JOB, Server

pytestmark = pytest.mark.xdist_group("processes")


class CountingTransport(httpx.HTTPTransport):
    """Counts the event-stream requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.streams = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.streams += request.url.params.get("stream") == "true"
        return super().handle_request(request)


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def client(server: Server, transport: CountingTransport) -> Iterator[Client]:
    with Client(server.url, server.api_key, timeout=30, transport=transport) as sdk:
        yield sdk


def test_job_from_submit_to_verified_download(
    client: Client, transport: CountingTransport, server: Server, tmp_path: Path
) -> None:
    job = client.jobs.create(TINY_JOB, idempotency_key="sdk-flow")
    assert isinstance(job, schemas.Job)
    assert job.name == "sdk-digits" and job.metadata == {"suite": "sdk"}
    assert client.jobs.create(TINY_JOB, idempotency_key="sdk-flow").id == job.id
    with pytest.raises(Conflict) as conflict:
        client.jobs.create({**TINY_JOB, "seed": 1}, idempotency_key="sdk-flow")
    assert conflict.value.code == "idempotency_conflict"

    # Followed live from the start over server-sent events, to the job's end, across the
    # streams the server ends every 2 s (each resumed from the last event id).
    events = list(client.jobs.events(job.id))
    assert transport.streams > 1
    assert all(isinstance(e, schemas.JobEvent) for e in events)
    assert [e.message for e in events if e.kind == "stage"] == STAGES
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e.id for e in client.jobs.events(job.id, follow=False)] == ids
    assert [e.id for e in client.jobs.events(job.id, after=ids[2])] == ids[3:]

    finished = client.jobs.wait(job.id, poll_interval=0.2, timeout=120)
    assert finished.status == "succeeded", finished.error
    assert finished.progress.fraction == 1.0
    assert finished.result is not None and "student" in finished.result
    # Its estimate, and what it did beside it, typed.
    cost = finished.cost
    assert cost is not None and cost.estimate is not None and cost.actual is not None
    assert cost.actual.steps["distill"] == cost.estimate.work.stages["distill"].steps == 2 * 11

    metrics = client.jobs.metrics(job.id)
    assert all(isinstance(m, schemas.MetricRow) for m in metrics)
    assert [m.epoch for m in metrics if m.stage == "distill"] == [1, 2]

    artifacts = {a.name: a for a in client.jobs.artifacts(job.id)}
    assert {"student.safetensors", "manifest.json", "report.json"} <= set(artifacts)
    student = artifacts["student.safetensors"]
    path = client.jobs.download(job.id, student.name, tmp_path)
    assert path == tmp_path / "student.safetensors"
    assert path.stat().st_size == student.bytes
    assert hashlib.sha256(path.read_bytes()).hexdigest() == student.sha256
    named = client.jobs.download(job.id, "report.json", tmp_path / "sub" / "r.json")
    assert named.read_bytes().startswith(b"{")

    # The listing's sha256, given explicitly, is checked too.
    with pytest.raises(ChecksumMismatch):
        client.jobs.download(job.id, student.name, tmp_path / "x.bin", sha256="0" * 64)
    assert not (tmp_path / "x.bin").exists()

    # A file changed on the server after its sha256 was recorded: same size, one byte off.
    stored = server.artifacts / "jobs" / job.id / "report.json"
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(ChecksumMismatch) as mismatch:
            client.jobs.download(job.id, "report.json", tmp_path / "tampered.json")
        assert mismatch.value.code == "checksum_mismatch"
        assert artifacts["report.json"].sha256 in str(mismatch.value)
        assert not list(tmp_path.glob("*tampered*"))
    finally:
        stored.write_bytes(original)

    with pytest.raises(Conflict):
        client.jobs.cancel(job.id)  # finished: 409
    client.jobs.delete(job.id)
    with pytest.raises(NotFound):
        client.jobs.retrieve(job.id)


def test_job_list_pages_through_every_job(client: Client) -> None:
    spec = {**TINY_JOB, "name": "sdk-listed"}
    created = [client.jobs.create(spec).id for _ in range(3)]
    for job_id in created:
        assert client.jobs.cancel(job_id).status in ("cancelling", "cancelled")
    listed = [job.id for job in client.jobs.list(limit=2)]
    assert len(listed) == len(set(listed))  # no page repeated
    # Newest first: the three just created lead the list, over two pages.
    assert listed[:3] == created[::-1]
    first = next(iter(client.jobs.list(limit=1, include=["spec"])))
    assert first.id == created[-1] and first.spec is not None
    assert list(itertools.islice(client.jobs.list(limit=1), 2)) != []
    for job_id in created:
        assert client.jobs.wait(job_id, poll_interval=0.2, timeout=60).status == "cancelled"
    cancelled = {job.id for job in client.jobs.list(status="cancelled", limit=1)}
    assert set(created) <= cancelled


def _csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(f"f{i}" for i in range(8)), "digit"])
        for row in range(rows):
            writer.writerow([*(f"{(row * 7 + i) % 97 / 9.7:.6f}" for i in range(8)), row % 3])
    return path


def test_file_upload_reports_progress_and_lists_across_pages(
    client: Client, tmp_path: Path
) -> None:
    path = _csv(tmp_path / "features.csv", 12_000)
    total = path.stat().st_size
    assert total > 600_000  # several chunks
    calls: list[tuple[int, int]] = []
    file = client.files.upload(
        path, "dataset", label_column="digit", progress=lambda s, t: calls.append((s, t))
    )
    assert isinstance(file, schemas.File)
    assert file.bytes == total and file.options["label_column"] == "digit"
    assert file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    sent = [s for s, _ in calls]
    assert {t for _, t in calls} == {total}
    assert sent[0] == 0 and sent[-1] == total and len(sent) > 2
    assert sent == sorted(set(sent))  # strictly increasing
    ready = client.files.wait(file.id, timeout=60)
    assert ready.status == "ready", ready.error
    assert ready.info is not None and ready.info["rows"] == 12_000

    small = [
        client.files.upload(_csv(tmp_path / f"s{i}.csv", 50), "dataset", label_column="digit")
        for i in range(2)
    ]
    ids = [f.id for f in client.files.list(purpose="dataset", limit=2)]
    assert ids[:3] == [small[1].id, small[0].id, file.id]
    assert client.files.delete(small[0].id).deleted
    with pytest.raises(NotFound):
        client.files.retrieve(small[0].id)

    with pytest.raises(UnprocessableEntity) as refused:
        client.files.upload(path, "teacher")
    assert refused.value.param == "file"


def test_an_estimate_before_running(client: Client) -> None:
    estimate = client.jobs.estimate(TINY_JOB)
    assert isinstance(estimate, schemas.Estimate)
    # One teacher epoch and two distillation epochs (and a baseline as long) of the 1293
    # digits training examples in batches of 128.
    assert (estimate.work.teacher_steps, estimate.work.student_steps) == (11, 2 * 2 * 11)
    assert estimate.wall_seconds["cpu"].total > 0
    with pytest.raises(UnprocessableEntity) as refused:
        client.jobs.estimate({**TINY_JOB, "student": {"arch": "cnn2d"}})
    assert (refused.value.code, refused.value.param) == ("invalid_spec", "student.arch")


def test_errors_are_typed_and_carry_the_error_shape(client: Client) -> None:
    with pytest.raises(NotFound) as missing:
        client.jobs.retrieve("job_nope")
    error = missing.value
    assert (error.status, error.code, error.param) == (404, "not_found", "id")
    assert "job_nope" in error.message

    with pytest.raises(UnprocessableEntity) as invalid:
        client.jobs.create({**TINY_JOB, "dataset": {"name": "no-such-set"}})
    assert invalid.value.status == 422 and invalid.value.code == "invalid_request"
    assert invalid.value.param == "dataset.name"

    with pytest.raises(UnprocessableEntity) as unknown:
        client.jobs.create({**TINY_JOB, "epochs": 3})
    assert unknown.value.param == "epochs"

    with pytest.raises(NotFound):
        client.jobs.download("job_nope", "student.onnx", "/nonexistent/never-written")

    names = {entry.name for entry in client.catalog.models()}
    assert "mlp" in names
    assert "digits" in {entry.name for entry in client.catalog.datasets()}
    assert "kd" in {entry.name for entry in client.catalog.methods()}


def test_api_key_from_the_environment_and_unauthorized(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISTILLERY_API_KEY", raising=False)
    monkeypatch.setenv("DISTILLERY_URL", server.url)
    with Client() as anonymous, pytest.raises(AuthenticationError) as denied:
        anonymous.jobs.retrieve("job_nope")
    assert (denied.value.status, denied.value.code) == (401, "unauthorized")
    with Client(api_key="dk_wrong") as wrong, pytest.raises(AuthenticationError):
        list(wrong.jobs.list())

    monkeypatch.setenv("DISTILLERY_API_KEY", server.api_key)
    with Client() as from_env:
        assert from_env.base_url == server.url
        with pytest.raises(NotFound):  # authenticated: the job is just missing
            from_env.jobs.retrieve("job_nope")
        assert isinstance(list(from_env.jobs.list()), list)
