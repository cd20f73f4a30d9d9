"""/v1/files: upload (streamed, size and quota limits, in one process and across processes on
one SQLite file, extension allow-list), list, get, delete (409 while a live job uses the file),
tenants."""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db import session_scope, upgrade_database
from app.models import File
from app.settings import Settings
from tests.app.files.conftest import (
    npz_bytes,
    staging_files,
    upload,
    upload_checked,
    wait_checked,
)
from tests.conftest import MINIMAL_JOB


def dataset_npz(rows: int = 20) -> bytes:
    rng = np.random.default_rng(0)
    return npz_bytes(x=rng.normal(size=(rows, 4)).astype(np.float32), y=np.arange(rows) % 3)


def test_upload_answers_processing_then_ready(client: TestClient) -> None:
    response = upload(client, "train.npz", dataset_npz(), "dataset")
    assert response.status_code == 201
    body = response.json()
    assert body["object"] == "file"
    assert body["id"].startswith("file_")
    assert body["status"] == "processing"
    assert (body["purpose"], body["format"], body["filename"]) == ("dataset", "npz", "train.npz")
    assert body["bytes"] == len(dataset_npz())
    checked = wait_checked(client, body["id"])
    assert checked["status"] == "ready", checked
    assert checked["info"]["rows"] == 20


def test_filename_is_reduced_to_a_safe_basename(client: TestClient) -> None:
    body = upload(client, "../../etc/" + "a" * 300 + "$(rm).npz", dataset_npz(), "dataset").json()
    assert "/" not in body["filename"] and "$" not in body["filename"]
    assert len(body["filename"]) <= 255
    assert body["filename"].endswith(".npz")


def test_list_paginates_newest_first_and_filters_by_purpose(client: TestClient) -> None:
    ids = [upload(client, f"d{i}.npz", dataset_npz(), "dataset").json()["id"] for i in range(3)]
    teacher = upload(client, "t.onnx", b"not onnx", "teacher").json()["id"]
    first = client.get("/v1/files", params={"limit": 2}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [f["id"] for f in first["data"]] == [teacher, ids[2]]
    rest = client.get("/v1/files", params={"limit": 2, "after": ids[2]}).json()
    assert [f["id"] for f in rest["data"]] == [ids[1], ids[0]]
    assert rest["has_more"] is False
    datasets = client.get("/v1/files", params={"purpose": "dataset"}).json()["data"]
    assert [f["id"] for f in datasets] == ids[::-1]
    bad_cursor = client.get("/v1/files", params={"after": "file_nope"})
    assert bad_cursor.status_code == 422 and bad_cursor.json()["error"]["param"] == "after"


def test_unknown_file_is_404(client: TestClient) -> None:
    for method in ("get", "delete"):
        response = getattr(client, method)("/v1/files/file_missing")
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": "not_found",
            "message": "no file 'file_missing'",
            "param": "id",
        }


def test_delete_removes_the_record_and_the_stored_data(
    client: TestClient, settings: Settings
) -> None:
    body = upload_checked(client, "d.npz", dataset_npz(), "dataset")
    root = settings.artifact_root / "files" / body["id"]
    assert (root / "upload").is_file() and (root / "x.npy").is_file()
    response = client.delete(f"/v1/files/{body['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": body["id"], "object": "file", "deleted": True}
    assert client.get(f"/v1/files/{body['id']}").status_code == 404
    assert not root.exists()


def test_delete_is_409_while_a_queued_job_uses_the_file(client: TestClient) -> None:
    file_id = upload_checked(client, "d.npz", dataset_npz(), "dataset")["id"]
    job = client.post("/v1/jobs", json={**MINIMAL_JOB, "dataset": {"name": f"file:{file_id}"}})
    assert job.status_code == 201, job.text
    response = client.delete(f"/v1/files/{file_id}")
    assert response.status_code == 409
    assert job.json()["id"] in response.json()["error"]["message"]
    assert client.post(f"/v1/jobs/{job.json()['id']}/cancel").json()["status"] == "cancelled"
    assert client.delete(f"/v1/files/{file_id}").status_code == 200


def test_upload_one_byte_over_the_limit_is_413_and_leaves_nothing(
    make_client: Callable[..., TestClient], settings: Settings
) -> None:
    client = make_client(max_upload_bytes=1000)
    response = upload(client, "t.onnx", b"x" * 1001, "teacher")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "1000 bytes" in response.json()["error"]["message"]
    assert staging_files(settings) == []
    assert client.get("/v1/files").json()["data"] == []
    assert upload(client, "t.onnx", b"x" * 1000, "teacher").status_code == 201


def test_upload_past_the_tenant_quota_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(tenant_max_stored_bytes=1500)
    assert upload(client, "a.onnx", b"x" * 1000, "teacher").status_code == 201
    response = upload(client, "b.onnx", b"x" * 1000, "teacher")
    assert response.status_code == 413
    assert "1500 bytes" in response.json()["error"]["message"]
    assert len(client.get("/v1/files").json()["data"]) == 1


def test_a_refused_uploads_bytes_are_removed_and_leave_the_quota(
    make_client: Callable[..., TestClient], settings: Settings
) -> None:
    client = make_client(tenant_max_stored_bytes=1500)
    response = upload(client, "a.onnx", b"x" * 1000, "teacher")
    assert response.status_code == 201, response.text
    refused = wait_checked(client, response.json()["id"])
    assert refused["status"] == "error" and refused["error"]["code"] == "invalid_file", refused
    assert refused["error"]["message"], refused  # why it was refused stays on the record
    assert refused["bytes"] == 1000  # what was uploaded
    assert not (settings.artifact_root / "files" / refused["id"]).exists()
    # The 1000 refused bytes no longer count: another 1000 fit under the 1500.
    assert upload(client, "b.onnx", b"x" * 1000, "teacher").status_code == 201
    assert client.get(f"/v1/files/{refused['id']}").json() == refused


def test_uploads_racing_past_the_quota_are_caught_when_saved(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two uploads that both streamed in under the quota (each measured before the other was
    stored) are counted again, under the tenant's lock, when they are saved."""
    from app.api import files as files_api

    client = make_client(tenant_max_stored_bytes=1500)
    monkeypatch.setattr(files_api, "_quota", lambda *_: (10**9, "measured before the race"))
    assert upload(client, "a.onnx", b"x" * 1000, "teacher").status_code == 201
    response = upload(client, "b.onnx", b"x" * 1000, "teacher")
    assert response.status_code == 413
    assert "1500 bytes" in response.json()["error"]["message"]
    assert len(client.get("/v1/files").json()["data"]) == 1


def test_declared_length_over_the_quota_is_refused_before_reading(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(tenant_max_stored_bytes=1000)
    big = b"x" * 200_000
    response = upload(client, "a.onnx", big, "teacher")
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["error"]["message"]


def assert_refused_extension(response: Any, *needles: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == "file"
    for needle in needles:
        assert needle in error["message"], error["message"]


def test_pickle_formats_are_refused_by_extension(client: TestClient) -> None:
    for name in ("model.pt", "model.pth", "pytorch_model.bin", "model.pkl", "last.ckpt"):
        assert_refused_extension(
            upload(client, name, b"\x80\x04K\x01.", "teacher"),
            "never loaded",
            "safetensors",
            "ONNX",
        )
    assert client.get("/v1/files").json()["data"] == []


def test_extensions_are_allowed_per_purpose(client: TestClient) -> None:
    assert_refused_extension(upload(client, "data.doc", b"1,2", "dataset"), ".npz", ".csv", ".txt")
    assert_refused_extension(upload(client, "w.safetensors", b"{}", "dataset"), "dataset")
    assert_refused_extension(upload(client, "d.csv", b"a\n1", "logits"), ".npy")


def test_bad_purpose_options_and_fields_are_422(client: TestClient) -> None:
    cases = [
        (upload(client, "d.npz", b"x", "images"), "purpose"),
        (client.post("/v1/files", files={"file": ("d.npz", b"x")}), "purpose"),
        (client.post("/v1/files", files={"purpose": (None, "dataset")}), "file"),
        (upload(client, "d.zip", b"x", "dataset", channels=2), "channels"),
        (upload(client, "d.zip", b"x", "dataset", image_size="0x3"), "image_size"),
        (upload(client, "d.npz", b"x", "dataset", label_column="y"), "label_column"),
        (upload(client, "d.npz", b"x", "dataset", colour="red"), "colour"),
    ]
    for response, param in cases:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == param
    not_multipart = client.post("/v1/files", json={"purpose": "dataset"})
    assert not_multipart.status_code == 415


def test_options_are_recorded(client: TestClient) -> None:
    body = upload(client, "d.zip", b"x", "dataset", image_size="28", channels=1).json()
    assert body["options"] == {"image_size": "28x28", "channels": 1}
    body = upload(client, "d.csv", b"a,b\n1,2\n", "dataset", label_column="b").json()
    assert body["options"] == {"label_column": "b"}


def test_another_tenants_file_is_404(
    make_client: Callable[..., TestClient], settings: Settings
) -> None:
    from app import auth
    from app.db import session_scope

    client = make_client(auth="required")
    with session_scope(settings.database_url) as session:
        _, acme = auth.create_key(session, "acme")
        _, globex = auth.create_key(session, "globex")
    as_acme = {"Authorization": f"Bearer {acme}"}
    as_globex = {"Authorization": f"Bearer {globex}"}
    no_key = client.post(
        "/v1/files", data={"purpose": "dataset"}, files={"file": ("d.npz", dataset_npz())}
    )
    assert no_key.status_code == 401
    response = client.post(
        "/v1/files",
        data={"purpose": "dataset"},
        files={"file": ("d.npz", dataset_npz())},
        headers=as_acme,
    )
    assert response.status_code == 201
    file_id = response.json()["id"]
    assert client.get(f"/v1/files/{file_id}", headers=as_acme).status_code == 200
    assert client.get(f"/v1/files/{file_id}", headers=as_globex).status_code == 404
    assert client.delete(f"/v1/files/{file_id}", headers=as_globex).status_code == 404
    assert client.get("/v1/files", headers=as_globex).json()["data"] == []
    job = client.post(
        "/v1/jobs",
        json={**MINIMAL_JOB, "dataset": {"name": f"file:{file_id}"}},
        headers=as_globex,
    )
    assert job.status_code == 422
    assert job.json()["error"]["param"] == "dataset.name"


# One process saving an upload (app.api.files._save) on a SQLite file; `hold` makes it wait in
# the commit of its file row, past the quota check, until the file `go` exists.
SAVE = """
import sys, time
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.orm import Session
from app.api.files import _save
from app.api_error import ApiError
from app.files import formats
from app.files.upload import Upload
from app.models import File
from app.settings import Settings
from app.store import make_store

url, root, name, hold = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "hold"
settings = Settings(database_url=url, artifact_url=str(root / "artifacts"),
                    work_dir=str(root / "work"), auto_migrate=False, tenant_max_stored_bytes=1500)

def wait_for_go(session):
    if hold and any(isinstance(row, File) for row in session.new):
        (root / f"{name}.checked").touch()
        while not (root / "go").exists():
            time.sleep(0.01)

event.listen(Session, "before_commit", wait_for_go)
staged = root / f"{name}.onnx"
staged.write_bytes(b"x" * 1000)
upload = Upload(filename=f"{name}.onnx", path=staged, bytes=1000, sha256="0" * 64)
try:
    row = _save(settings, make_store(settings.artifact_url), "default", upload,
                formats.get("teacher", "onnx"), {})
    print("saved", row.id)
except ApiError as exc:
    print("refused", exc.status)
"""


def waiting_for_a_file_lock(pid: int) -> bool:
    """The process waits for a flock another holds (a blocked entry in /proc/locks)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("-> FLOCK" in line and line.split()[5] == str(pid) for line in lines)


def test_uploads_in_two_processes_on_one_sqlite_file_keep_the_quota(tmp_path: Path) -> None:
    """Process A has checked the quota (1000 of 1500 bytes free for its 1000) and not yet
    committed; process B's check must wait for A's commit, count A's bytes and refuse. Before
    the tenant's file lock B counted 0 bytes stored, and both uploads were saved."""
    url = f"sqlite:///{tmp_path / 'distillery.db'}"
    upgrade_database(url)
    started = []
    for name in ("a", "b"):
        argv = [sys.executable, "-c", SAVE, url, str(tmp_path), name, "hold"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append(process)
        deadline = time.monotonic() + 60
        # A: until it is past its check. B: until it is past its check too (the race), or
        # waiting for A's lock.
        while not (tmp_path / f"{name}.checked").exists():
            if name == "b" and waiting_for_a_file_lock(process.pid):
                break
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, f"{name} neither checked nor waited"
            time.sleep(0.02)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=60)[0].decode() for p in started]
    assert [p.returncode for p in started] == [0, 0], outputs
    assert outputs[0].startswith("saved") and outputs[1].strip() == "refused 413", outputs
    with session_scope(url) as session:
        assert session.scalar(select(func.count()).select_from(File)) == 1
