"""A job naming files: each must be the tenant's, ready, of the right purpose, and fit the
others (shapes, classes, logits rows)."""

from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import session_scope
from app.models import File, JobFile
from app.settings import Settings
from tests.app.files.checkers.test_onnx_model import linear_model
from tests.app.files.conftest import npy_bytes, npz_bytes, upload_checked
from tests.conftest import MINIMAL_JOB


def job(**changes: Any) -> dict[str, Any]:
    return {**MINIMAL_JOB, **changes}


def assert_422(response: Any, param: str, *needles: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    for needle in needles:
        assert needle in error["message"], error["message"]


def dataset(client: TestClient, rows: int = 10, test_rows: int = 0, labelled: bool = True) -> str:
    arrays: dict[str, np.ndarray] = {"x": np.zeros((rows, 4), np.float32)}
    if labelled:
        arrays["y"] = np.arange(rows) % 3
    if test_rows:
        arrays["x_test"] = np.zeros((test_rows, 4), np.float32)
        if labelled:
            arrays["y_test"] = np.arange(test_rows) % 3
    body = upload_checked(client, "d.npz", npz_bytes(**arrays), "dataset")
    assert body["status"] == "ready", body
    return str(body["id"])


def logits(client: TestClient, rows: int, classes: int = 3, test_rows: int = 0) -> str:
    if test_rows:
        content = npz_bytes(
            logits=np.zeros((rows, classes), np.float32),
            logits_test=np.zeros((test_rows, classes), np.float32),
        )
        body = upload_checked(client, "l.npz", content, "logits")
    else:
        body = upload_checked(client, "l.npy", npy_bytes(np.zeros((rows, classes))), "logits")
    assert body["status"] == "ready", body
    return str(body["id"])


def test_logits_job_records_the_files_it_uses(client: TestClient, settings: Settings) -> None:
    data = dataset(client, rows=10, test_rows=2)
    transfer = dataset(client, rows=6, test_rows=1, labelled=False)
    teacher = logits(client, rows=10 + 6 + 1, test_rows=2)
    response = client.post(
        "/v1/jobs",
        json=job(
            dataset={"name": f"file:{data}", "transfer": {"name": f"file:{transfer}"}},
            teacher={"source": "logits", "file_id": teacher},
        ),
    )
    assert response.status_code == 201, response.text
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(JobFile).where(JobFile.job_id == response.json()["id"]))
        assert {(r.file_id, r.role) for r in rows} == {
            (data, "dataset"),
            (transfer, "transfer"),
            (teacher, "logits"),
        }


def test_logits_of_the_wrong_shape_are_422(client: TestClient) -> None:
    data = dataset(client, rows=10, test_rows=2)
    spec = {"name": f"file:{data}"}
    for teacher, needles in [
        (logits(client, rows=9), ("9 rows", "needs 10")),
        (logits(client, rows=10, classes=4), ("4 columns", "3 classes")),
        (logits(client, rows=10, test_rows=3), ("3 logits_test rows", "2 test rows")),
    ]:
        response = client.post(
            "/v1/jobs", json=job(dataset=spec, teacher={"source": "logits", "file_id": teacher})
        )
        assert_422(response, "teacher.file_id", *needles)
    builtin = client.post(
        "/v1/jobs",
        json=job(teacher={"source": "logits", "file_id": logits(client, rows=10)}),
    )
    assert_422(builtin, "dataset.name", "uploaded dataset")


def test_files_of_the_wrong_kind_or_state_are_422(client: TestClient, settings: Settings) -> None:
    data = dataset(client)
    unlabelled = dataset(client, labelled=False)
    scores = logits(client, rows=10)
    with session_scope(settings.database_url) as session:
        session.add(
            File(
                id="file_pending",
                purpose="dataset",
                filename="d.npz",
                format="npz",
                storage_key="files/file_pending/upload",
            )
        )
    cases = [
        (job(dataset={"name": "file:file_nope"}), "dataset.name", "no file 'file_nope'"),
        (job(dataset={"name": "file:file_pending"}), "dataset.name", "processing"),
        (job(dataset={"name": f"file:{scores}"}), "dataset.name", "not a dataset"),
        (job(dataset={"name": f"file:{unlabelled}"}), "dataset.name", "no labels"),
        (
            job(teacher={"source": "weights", "arch": "mlp", "file_id": data}),
            "teacher.file_id",
            "safetensors",
        ),
        (job(teacher={"source": "onnx", "file_id": "file_nope"}), "teacher.file_id", "no file"),
    ]
    for body, param, needle in cases:
        assert_422(client.post("/v1/jobs", json=body), param, needle)


def test_onnx_and_transfer_shapes_must_fit_the_dataset(client: TestClient) -> None:
    data = dataset(client)
    spec = {"name": f"file:{data}"}

    def onnx_file(**kw: Any) -> str:
        body = upload_checked(client, "t.onnx", linear_model(**kw).SerializeToString(), "teacher")
        assert body["status"] == "ready", body
        return str(body["id"])

    ok = client.post(
        "/v1/jobs", json=job(dataset=spec, teacher={"source": "onnx", "file_id": onnx_file()})
    )
    assert ok.status_code == 201, ok.text
    for kw, needle in [({"inputs": 5}, "input of shape"), ({"classes": 4}, "outputs 4")]:
        response = client.post(
            "/v1/jobs",
            json=job(dataset=spec, teacher={"source": "onnx", "file_id": onnx_file(**kw)}),
        )
        assert_422(response, "teacher.file_id", needle)
    other = upload_checked(client, "t.npz", npz_bytes(x=np.zeros((3, 5), np.float32)), "dataset")
    response = client.post(
        "/v1/jobs", json=job(dataset={**spec, "transfer": {"name": f"file:{other['id']}"}})
    )
    assert_422(response, "dataset.transfer.name", "[5]", "[4]")


TEXT = ("def greet(name):\n    return f'hello {name}'\n\n" * 120).encode()
GPT = {"layers": 1, "heads": 1, "dim": 16}


def test_a_model_whose_context_is_shorter_than_the_text_windows_is_422(
    client: TestClient,
) -> None:
    text = upload_checked(client, "code.txt", TEXT, "dataset", context=64)
    assert text["status"] == "ready", text

    def lm_job(teacher_context: int, student_context: int) -> dict[str, Any]:
        return {
            "task": "language_model",
            "dataset": {"name": f"file:{text['id']}"},
            "teacher": {"arch": "gpt", "params": {**GPT, "context": teacher_context}},
            "student": {"arch": "gpt", "params": {**GPT, "context": student_context}},
        }

    short_student = client.post("/v1/jobs", json=lm_job(64, 32))
    assert_422(short_student, "student.params.context", "32", "64")
    short_teacher = client.post("/v1/jobs", json=lm_job(63, 128))
    assert_422(short_teacher, "teacher.params.context", "63", "64")
    fits = client.post("/v1/jobs", json=lm_job(64, 128))
    assert fits.status_code == 201, fits.text


def test_a_model_that_cannot_read_the_dataset_files_shape_is_422(client: TestClient) -> None:
    flat = {"name": f"file:{dataset(client)}"}  # examples of shape [4]
    images = upload_checked(
        client,
        "i.npz",
        npz_bytes(x=np.zeros((10, 3, 8, 8), np.float32), y=np.arange(10) % 3),
        "dataset",
    )
    short = upload_checked(
        client, "s.npz", npz_bytes(x=np.zeros((10, 2), np.float32), y=np.arange(10) % 3), "dataset"
    )
    cases = [
        (job(dataset=flat, student={"arch": "resnet_cifar"}), "student.arch", "[4]"),
        (job(dataset=flat, teacher={"arch": "cnn2d"}), "teacher.arch", "[4]"),
        (
            job(dataset={"name": f"file:{short['id']}"}, student={"arch": "cnn1d"}),
            "student.arch",
            "2 steps",
        ),
        (
            job(
                dataset={"name": f"file:{images['id']}"},
                teacher={"source": "weights", "arch": "cnn1d", "file_id": "file_x"},
            ),
            "teacher.arch",
            "[3, 8, 8]",
        ),
    ]
    for body, param, needle in cases:
        assert_422(client.post("/v1/jobs", json=body), param, needle)
    for body in [
        job(dataset={"name": f"file:{images['id']}"}, student={"arch": "resnet_cifar"}),
        job(dataset=flat, student={"arch": "cnn1d"}),
    ]:
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == 201, response.text
