"""AsyncClient against a real API process: the job flow, a list across pages, an upload and
typed errors, with `await` and `async for`."""

import asyncio
import hashlib
from pathlib import Path

import pytest

from distillery import AsyncClient, AuthenticationError, NotFound, UnprocessableEntity
from distillery import types as schemas
from tests.distillery.conftest import STAGES, TINY_JOB, Server

pytestmark = pytest.mark.xdist_group("processes")


def test_async_job_flow(server: Server, tmp_path: Path) -> None:
    async def flow() -> None:
        async with AsyncClient(server.url, server.api_key, timeout=30) as client:
            job = await client.jobs.create(
                {**TINY_JOB, "name": "sdk-async"}, idempotency_key="sdk-async"
            )
            again = await client.jobs.create(
                {**TINY_JOB, "name": "sdk-async"}, idempotency_key="sdk-async"
            )
            assert again.id == job.id

            events = [event async for event in client.jobs.events(job.id)]
            assert [e.message for e in events if e.kind == "stage"] == STAGES
            listed = [e.id async for e in client.jobs.events(job.id, follow=False)]
            assert listed == [e.id for e in events]

            finished = await client.jobs.wait(job.id, poll_interval=0.2, timeout=120)
            assert finished.status == "succeeded", finished.error
            estimate = await client.jobs.estimate({**TINY_JOB, "name": "sdk-async"})
            assert finished.cost is not None and finished.cost.actual is not None
            assert estimate.work.student_steps == finished.cost.actual.student_steps
            metrics = await client.jobs.metrics(job.id)
            assert [m.epoch for m in metrics if m.stage == "distill"] == [1, 2]

            artifacts = {a.name: a for a in await client.jobs.artifacts(job.id)}
            student = artifacts["student.safetensors"]
            path = await client.jobs.download(job.id, student.name, tmp_path)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == student.sha256

            other = await client.jobs.create({**TINY_JOB, "name": "sdk-async-other"})
            assert (await client.jobs.cancel(other.id)).status in ("cancelling", "cancelled")
            ids = [j.id async for j in client.jobs.list(limit=1)]
            assert ids[:2] == [other.id, job.id] and len(ids) == len(set(ids))
            cancelled = await client.jobs.wait(other.id, poll_interval=0.2, timeout=60)
            assert cancelled.status == "cancelled"
            assert "mlp" in {entry.name for entry in await client.catalog.models()}

    asyncio.run(flow())


def test_async_upload_and_errors(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "logits.npy"
    path.write_bytes(b"not really numpy" * 1000)

    async def calls() -> None:
        async with AsyncClient(server.url, server.api_key) as client:
            seen: list[int] = []
            file = await client.files.upload(
                path, "logits", progress=lambda sent, total: seen.append(sent)
            )
            assert isinstance(file, schemas.File) and file.bytes == path.stat().st_size
            assert seen[0] == 0 and seen[-1] == file.bytes
            checked = await client.files.wait(file.id, timeout=60)
            assert checked.status == "error" and checked.error is not None
            assert file.id in [f.id async for f in client.files.list(purpose="logits")]
            assert (await client.files.delete(file.id)).deleted

            with pytest.raises(NotFound) as missing:
                await client.jobs.retrieve("job_nope")
            assert (missing.value.status, missing.value.param) == (404, "id")
            with pytest.raises(UnprocessableEntity) as invalid:
                await client.jobs.create({"dataset": {"name": "digits"}})
            assert invalid.value.param is not None
        async with AsyncClient(server.url, api_key="dk_wrong") as anonymous:
            with pytest.raises(AuthenticationError):
                await anonymous.jobs.retrieve("job_nope")

    asyncio.run(calls())
