"""Text classification end to end: a .jsonl of texts and labels and an unlabelled .jsonl
transfer set uploaded through the API, a byte-level transformer teacher distilled into a
byte-level CNN, and an ONNX student that takes raw UTF-8 bytes padded to the model's length;
ONNX and Hugging Face text classifiers as teachers."""

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from fastapi.testclient import TestClient

from app.files.splits import fixed_test_split
from app.files.text_examples import encode
from app.models import JobStatus
from app.settings import Settings
from distillery.types.catalog.models import TextCnnParams
from tests.app.files.conftest import upload_checked
from tests.worker.teachers.tiny_hf import save_tiny_classifier, zip_folder
from tests.worker.test_pipeline import load
from worker import lifecycle
from worker.export import export_onnx
from worker.models.text import TextCnn

MAX_LENGTH = 32
HALVES = ("abcdefghijklm", "nopqrstuvwxyz")  # class 0 writes with the first, class 1 the second


def texts(n: int, seed: int) -> list[tuple[str, int]]:
    """Short "sentences" whose class is the half of the alphabet they are written in."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randrange(2)
        words = [
            "".join(rng.choice(HALVES[label]) for _ in range(rng.randint(2, 6)))
            for _ in range(rng.randint(2, 6))
        ]
        out.append((" ".join(words), label))
    return out


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def spec(dataset: str, transfer: str, **changes: Any) -> dict[str, Any]:
    return {
        "dataset": {"name": f"file:{dataset}", "transfer": {"name": f"file:{transfer}"}},
        "teacher": {
            "arch": "text_transformer",
            "params": {"layers": 1, "heads": 2, "dim": 16},
            "train": {"epochs": 3, "batch_size": 32, "optimizer": "adamw", "lr": 0.01},
        },
        "student": {"arch": "text_cnn", "params": {"dim": 8, "channels": 8, "kernels": [3]}},
        "distill": {"epochs": 3, "batch_size": 32, "optimizer": "adamw", "lr": 0.01},
        "export": ["safetensors", "onnx"],
        **changes,
    }


def test_a_text_classifier_is_distilled_and_its_onnx_reads_raw_bytes(
    client: TestClient, settings: Settings
) -> None:
    labelled = texts(240, seed=1)
    data = upload_checked(
        client,
        "train.jsonl",
        jsonl([{"text": t, "label": ["first", "second"][y]} for t, y in labelled]),
        "dataset",
        max_length=MAX_LENGTH,
    )
    transfer = upload_checked(
        client,
        "unlabelled.jsonl",
        jsonl([{"text": t} for t, _ in texts(240, seed=2)]),
        "dataset",
        task="classification",
        max_length=MAX_LENGTH,
    )
    assert data["status"] == transfer["status"] == "ready", (data, transfer)

    # Models that read numbers are refused for text, and augmentation too.
    for changes, param in (
        ({"student": {"arch": "mlp"}}, "student.arch"),
        ({"teacher": {"arch": "cnn1d"}}, "teacher.arch"),
    ):
        wrong = client.post("/v1/jobs", json=spec(data["id"], transfer["id"], **changes))
        assert wrong.status_code == 422 and wrong.json()["error"]["param"] == param, wrong.text

    created = client.post("/v1/jobs", json=spec(data["id"], transfer["id"]))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    lifecycle.run(job_id, settings)
    job, events, _, _ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.result
    assert result["teacher"]["test_accuracy"] >= 0.9, result["teacher"]
    assert result["student"]["test_accuracy"] >= 0.8, result["student"]
    assert any("240 transfer examples" in e.message for e in events), [e.message for e in events]

    folder = Path(settings.artifact_url) / "jobs" / job_id
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["input"]["dtype"] == "uint8" and manifest["input"]["shape"] == [None, 32]
    assert manifest["preprocessing"]["encoding"] == "utf-8"
    assert manifest["class_names"] == ["first", "second"]
    # The exported student on the raw test texts (the file's fixed test split) gives the
    # reported accuracy.
    _, test_rows = fixed_test_split(len(labelled))
    test_texts = [labelled[i][0] for i in test_rows]
    test_labels = np.array([labelled[i][1] for i in test_rows])
    session = onnxruntime.InferenceSession(str(folder / "student.onnx"))
    x, _ = encode(test_texts, MAX_LENGTH)
    logits = session.run(None, {manifest["input"]["name"]: x})[0]
    accuracy = float((logits.argmax(1) == test_labels).mean())
    assert abs(accuracy - result["student"]["test_accuracy"]) < 1e-4, (accuracy, result)


def test_text_datasets_take_no_augmentation(client: TestClient) -> None:
    rows = jsonl([{"text": t, "label": y} for t, y in texts(40, seed=3)])
    data = upload_checked(client, "d.jsonl", rows, "dataset", max_length=16)
    job = spec(data["id"], data["id"], baseline=False)
    del job["dataset"]["transfer"]
    job["dataset"]["augment"] = {"kind": "signal"}
    created = client.post("/v1/jobs", json=job)
    assert created.status_code == 422, created.text
    assert created.json()["error"]["param"] == "dataset.augment", created.text
    assert "text datasets take no augmentation" in created.json()["error"]["message"]


def test_an_onnx_text_classifier_is_a_teacher(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """A user's own text classifier exported to ONNX with a bytes input (as Distillery exports
    its text students) labels the texts; its reported accuracy is what it scores itself."""
    labelled = texts(160, seed=4)
    x, _ = encode([t for t, _ in labelled], MAX_LENGTH)
    y = torch.tensor([label for _, label in labelled])
    torch.manual_seed(0)
    model = TextCnn(TextCnnParams(dim=8, channels=8, kernels=[3]), 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    export_onnx(model, torch.from_numpy(x[:2]), tmp_path / "teacher.onnx", ("bytes", "logits"))

    data = upload_checked(
        client,
        "d.jsonl",
        jsonl([{"text": t, "label": label} for t, label in labelled]),
        "dataset",
        max_length=MAX_LENGTH,
    )
    teacher = upload_checked(
        client, "teacher.onnx", (tmp_path / "teacher.onnx").read_bytes(), "teacher"
    )
    assert teacher["info"]["input"]["dtype"] == "uint8", teacher
    job = spec(data["id"], data["id"], teacher={"source": "onnx", "file_id": teacher["id"]})
    del job["dataset"]["transfer"]
    created = client.post("/v1/jobs", json=job)
    assert created.status_code == 201, created.text
    lifecycle.run(created.json()["id"], settings)
    done = load(settings, created.json()["id"])[0]
    assert done.status == JobStatus.SUCCEEDED, done.error
    _, test_rows = fixed_test_split(len(labelled))
    session = onnxruntime.InferenceSession(str(tmp_path / "teacher.onnx"))
    logits = session.run(None, {"bytes": x[test_rows]})[0]
    accuracy = float((logits.argmax(1) == y.numpy()[test_rows]).mean())
    assert abs(done.result["teacher"]["test_accuracy"] - accuracy) < 1e-4, done.result["teacher"]


def test_a_hugging_face_classifier_teaches_a_byte_level_student(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """A model folder `save_pretrained` wrote, zipped and uploaded, labels the texts through
    its own tokenizer (offline transformers); the byte-level student learns from it."""
    labelled = texts(240, seed=1)
    folder = save_tiny_classifier(tmp_path / "hf", num_labels=2, examples=labelled)
    teacher = upload_checked(client, "model.zip", zip_folder(folder), "teacher")
    assert teacher["status"] == "ready" and teacher["info"]["format"] == "hf", teacher
    data = upload_checked(
        client,
        "d.jsonl",
        jsonl([{"text": t, "label": label} for t, label in labelled]),
        "dataset",
        max_length=MAX_LENGTH,
    )
    job = spec(data["id"], data["id"], teacher={"source": "hf", "file_id": teacher["id"]})
    del job["dataset"]["transfer"]
    created = client.post("/v1/jobs", json=job)
    assert created.status_code == 201, created.text
    lifecycle.run(created.json()["id"], settings)
    done = load(settings, created.json()["id"])[0]
    assert done.status == JobStatus.SUCCEEDED, done.error
    result = done.result
    assert result["teacher"]["source"] == "hf" and result["teacher"]["test_accuracy"] >= 0.9
    assert result["student"]["test_accuracy"] >= 0.8, result
    # A pickled checkpoint in the folder is refused at upload.
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    refused = upload_checked(client, "model.zip", zip_folder(folder), "teacher")
    assert refused["status"] == "error" and "pytorch_model.bin" in refused["error"]["message"]
