"""Text uploads (.txt, .jsonl) for language_model jobs: cut into windows by the documented
split rule at upload, refused with the line or byte at fault, and distilled end to end."""

import json

import numpy as np
from fastapi.testclient import TestClient

from app.files.text_windows import windows
from app.models import JobStatus
from app.settings import Settings
from tests.app.files.conftest import refused, stored_array, upload_checked
from tests.worker.test_pipeline import load
from worker import lifecycle

TEXT = ("def greet(name):\n    return f'hello {name}'\n\n" * 120).encode()


def test_a_txt_file_becomes_the_windows_of_the_split_rule(
    client: TestClient, settings: Settings
) -> None:
    body = upload_checked(client, "code.txt", TEXT, "dataset", context=32)
    assert body["status"] == "ready", body
    info = body["info"]
    assert info["format"] == "text" and info["task"] == "language_model"
    assert (info["input_shape"], info["num_classes"], info["dtype"]) == ([32], 256, "uint8")
    assert info["bytes"] == len(TEXT) and info["documents"] == 1
    x, y, x_test, y_test = windows(TEXT, 32)
    for name, expected in (("x", x), ("y", y), ("x_test", x_test), ("y_test", y_test)):
        assert np.array_equal(stored_array(settings, info["arrays"][name]), expected), name
    assert (info["rows"], info["test_rows"]) == (len(x), len(x_test))
    assert "every tenth run" in info["test_split"]


def test_jsonl_documents_are_joined_by_newlines(client: TestClient, settings: Settings) -> None:
    docs = [f"document {i}: " + "lorem ipsum dolor " * 5 for i in range(60)]
    lines = "\n".join(json.dumps({"text": d, "source": "x"}) for d in docs) + "\n\n"
    body = upload_checked(client, "docs.jsonl", lines.encode(), "dataset")
    assert body["status"] == "ready", body
    joined = "\n".join(docs).encode()
    assert body["info"]["documents"] == 60 and body["info"]["bytes"] == len(joined)
    assert body["info"]["input_shape"] == [128]  # the default context
    x = stored_array(settings, body["info"]["arrays"]["x"])
    assert np.array_equal(x, windows(joined, 128)[0])


def test_text_problems_name_the_line_or_byte(client: TestClient) -> None:
    cases = [
        ("a.txt", b"fine text\n" * 100 + b"\xff\xfe", {}, ("not UTF-8", "byte 1000")),
        ("a.jsonl", b'{"text": "ok"}\n[1, 2]\n', {}, ("line 2", '"text"')),
        ("a.jsonl", b'{"text": "ok"}\n{"text": 3}\n', {}, ("line 2",)),
        ("a.jsonl", b'{"text": "ok"}\n{nope\n', {}, ("line 2", "not JSON")),
        ("a.txt", b"too short", {}, ("windows",)),
        ("a.jsonl", b"\n\n", {}, ("no text",)),
    ]
    for name, content, fields, needles in cases:
        refused(upload_checked(client, name, content, "dataset", **fields), *needles)
    response = client.post(
        "/v1/files",
        data={"purpose": "dataset", "context": "1"},
        files={"file": ("a.txt", TEXT)},
    )
    assert response.status_code == 422 and response.json()["error"]["param"] == "context"


def test_an_uploaded_text_is_distilled_by_a_language_model_job(
    client: TestClient, settings: Settings
) -> None:
    body = upload_checked(client, "code.txt", TEXT, "dataset", context=32)
    gpt = {"layers": 1, "heads": 1, "dim": 16, "context": 32}
    spec = {
        "task": "language_model",
        "dataset": {"name": f"file:{body['id']}"},
        "teacher": {"arch": "gpt", "params": gpt, "train": {"epochs": 1, "batch_size": 16}},
        "student": {"arch": "gpt", "params": {**gpt, "dim": 8}},
        "distill": {"epochs": 1, "batch_size": 16},
        "baseline": False,
        "export": ["safetensors"],
    }
    # A text file is a language-model dataset, not a classification one.
    wrong = client.post(
        "/v1/jobs",
        json={
            **spec,
            "task": "classification",
            "teacher": {"arch": "mlp", "train": {"epochs": 1}},
            "student": {"arch": "mlp"},
        },
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "dataset.name"
    created = client.post("/v1/jobs", json=spec)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    lifecycle.run(job_id, settings)
    job = load(settings, job_id)[0]
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result is not None and 0 < job.result["student"]["test_bits_per_byte"] < 8
