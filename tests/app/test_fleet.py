"""Device-aware routing at POST: a job asking for a device kind, GPU count or memory that no
worker seen lately has is a 422 naming the field; one a worker can serve goes to its device's
queue; what a worker announces is found with nvidia-smi (a stand-in script here: no GPU)."""

import os
import stat
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import fleet
from app.db import session_scope
from app.fleet import Capabilities
from app.models import Worker, utcnow
from app.settings import Settings
from distillery.types.protocol import job_queue
from tests.conftest import MINIMAL_JOB, RecordingDispatcher

GIB = 1024**3


def announce(settings: Settings, name: str, capabilities: Capabilities, age: float = 0) -> None:
    with session_scope(settings.database_url) as session:
        fleet.announce(session, name, capabilities)
        if age:
            row = session.get(Worker, name)
            assert row is not None
            row.seen_at = utcnow() - timedelta(seconds=age)
            session.commit()


def post(client: TestClient, **resources: Any) -> Any:
    return client.post("/v1/jobs", json={**MINIMAL_JOB, "resources": resources})


def test_a_job_any_worker_may_run_needs_no_announced_worker(
    client: TestClient, dispatcher: RecordingDispatcher
) -> None:
    response = client.post("/v1/jobs", json=MINIMAL_JOB)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["spec"]["resources"] == {
        "device": "any",
        "gpus": 0,
        "memory_gb": None,
        "processes": 1,
    }
    assert dispatcher.devices[job["id"]] == "any"


def test_a_job_no_worker_can_serve_is_refused_naming_the_field(
    client: TestClient, settings: Settings, dispatcher: RecordingDispatcher
) -> None:
    announce(settings, "cpu-1", Capabilities("cpu", 0, 16 * GIB))
    announce(settings, "gpu-1", Capabilities("cuda", 1, 24 * GIB))
    announce(settings, "gpu-gone", Capabilities("cuda", 8, 80 * GIB), age=3600)

    # Only the stale worker (not heard from in WORKER_SEEN_SECONDS) had these.
    refused = {
        "resources.gpus": post(client, device="cuda", gpus=2),
        "resources.processes": post(client, device="cuda", processes=2),  # a GPU each
        "resources.memory_gb": post(client, device="cuda", memory_gb=40),
    }
    for param, response in refused.items():
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["param"] == param, error
        assert "gpu-1 (cuda, 1 GPUs of 24 GB)" in error["message"], error
        assert "gpu-gone" not in error["message"]

    served = {
        "cuda": post(client, device="cuda", gpus=1, memory_gb=20),
        "cpu": post(client, device="cpu", memory_gb=8),
        "any": post(client, memory_gb=20),
    }
    for device, response in served.items():
        assert response.status_code == 201, response.text
        assert dispatcher.devices[response.json()["id"]] == device
    assert dispatcher.sent == [r.json()["id"] for r in served.values()]


def test_no_worker_of_the_device_kind_is_a_422_on_resources_device(
    client: TestClient, settings: Settings
) -> None:
    announce(settings, "cpu-1", Capabilities("cpu", 0, 16 * GIB))
    response = post(client, device="cuda")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "resources.device"
    assert "no worker runs jobs on cuda" in error["message"]
    assert "cpu-1 (cpu, 16 GB)" in error["message"]
    assert post(client, device="cpu", gpus=1).status_code == 422  # a cpu job asks no GPU


def test_a_job_queue_is_its_device_kind() -> None:
    assert job_queue("gpu", "any") == "gpu"
    assert job_queue("gpu", "cuda") == "gpu.cuda"


@pytest.fixture
def nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An nvidia-smi that lists two 80 GB GPUs and a 40 GB one, as the real one answers
    `--query-gpu=index,memory.total --format=csv,noheader,nounits`."""
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nprintf '0, 81559\\n1, 81559\\n2, 40960\\n'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_a_worker_announces_the_gpus_nvidia_smi_lists(
    settings: Settings, nvidia_smi: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = fleet.detect(settings, ["gpu"])
    assert (found.device, found.gpus, found.memory_bytes) == ("cuda", 3, 40960 * 1024**2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert fleet.detect(settings, []).gpus == 2
    assert fleet.detect(settings, []).memory_bytes == 81559 * 1024**2
    cpu = fleet.detect(settings.model_copy(update={"worker_device": "cpu"}), [])
    assert cpu.device == "cpu" and cpu.gpus == 0 and cpu.memory_bytes > GIB


def test_a_machine_without_nvidia_smi_is_a_cpu_worker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found = fleet.detect(settings, [])
    assert found.device == "cpu" and found.memory_bytes > GIB


def test_an_announcer_says_what_the_worker_has_and_forgets_it_on_stop(settings: Settings) -> None:
    announcer = fleet.Announcer(settings, "w@host", Capabilities("cpu", 0, 8 * GIB, ["gpu"]))
    announcer.start()
    try:
        for _ in range(100):
            with session_scope(settings.database_url) as session:
                row = session.get(Worker, "w@host")
                if row is not None:
                    break
            threading.Event().wait(0.05)
        assert row is not None and row.device == "cpu" and row.queues == ["gpu"]
    finally:
        announcer.stop()
    with session_scope(settings.database_url) as session:
        assert session.get(Worker, "w@host") is None
