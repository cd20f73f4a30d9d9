"""DistilBERT's recipe as one job: an uploaded BERT sequence classifier (built here with
transformers, its head never trained) is fine-tuned on the labelled texts (`teacher.train`),
a student made from every other layer of it, its MLPs halved (`from_teacher`), learns by
KD + CE + the cosine of the last hidden states (`distilbert`), and comes back as a folder
transformers loads, as ONNX taking the tokenizer's ids and as dynamic int8; every file,
tokenized as the manifest says, gives the report's accuracy."""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from fastapi.testclient import TestClient

from app.files.splits import fixed_test_split
from app.models import JobStatus
from app.settings import Settings
from tests.app.files.conftest import upload_checked
from tests.worker.teachers.tiny_hf import save_tiny_classifier, zip_folder
from tests.worker.test_pipeline import load
from tests.worker.test_pipeline_text_classification import MAX_LENGTH, jsonl, texts
from worker import lifecycle


def encoder_spec(data: str, teacher: str, **changes: Any) -> dict[str, Any]:
    fit = {"epochs": 3, "batch_size": 32, "optimizer": "adamw", "lr": 0.003}
    return {
        "dataset": {"name": f"file:{data}"},
        "teacher": {"source": "hf", "file_id": teacher, "train": fit},
        "student": {"source": "from_teacher", "layers": "every_other", "intermediate": 16},
        "distill": {**fit, "method": "distilbert"},
        "compress": {"quantize": {}},
        **changes,
    }


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean())


def test_a_bert_is_fine_tuned_then_distilled_into_every_other_layer(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    labelled = texts(240, seed=1)
    # Four layers, the character vocabulary of the texts, nothing trained (steps=0).
    folder = save_tiny_classifier(
        tmp_path / "bert", num_labels=2, examples=labelled, steps=0, layers=4
    )
    teacher = upload_checked(client, "bert.zip", zip_folder(folder), "teacher")
    data = upload_checked(
        client,
        "d.jsonl",
        jsonl([{"text": t, "label": y} for t, y in labelled]),
        "dataset",
        max_length=MAX_LENGTH,
    )
    assert teacher["status"] == data["status"] == "ready", (teacher, data)

    # What the API refuses before anything runs.
    for changes, param in (
        ({"student": {"source": "from_teacher", "heads": 1}}, "student.heads"),
        (
            {"student": {"source": "from_teacher", "importance": "activation"}},
            "student.importance",
        ),
        ({"distill": {"method": "distilbert", "soft_labels": "stored"}}, "distill.soft_labels"),
        (
            {"student": {"arch": "text_cnn", "params": {"dim": 8, "channels": 8}}},
            "distill.method",
        ),
    ):
        wrong = client.post("/v1/jobs", json=encoder_spec(data["id"], teacher["id"], **changes))
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["error"]["param"] == param, wrong.text

    created = client.post("/v1/jobs", json=encoder_spec(data["id"], teacher["id"]))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert created.json()["spec"]["export"] == ["safetensors", "onnx", "hf"]
    lifecycle.run(job_id, settings)
    job, events, metrics, _ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.result

    # The teacher was fine-tuned first (its head started untrained).
    assert result["teacher"]["fine_tuned"] is True
    assert {m.stage for m in metrics} >= {"pretrain_teacher", "distill", "baseline"}
    assert result["teacher"]["test_accuracy"] >= 0.9, result["teacher"]
    # Every other layer of four, initialised from the teacher's (their MLPs cut to their 16
    # largest neurons of 32), learning from it.
    described = result["student"]["student_source"]
    assert described["layers"] == [0, 2] and described["teacher_layers"] == 4, described
    assert result["student"]["params"] < result["teacher"]["params"]
    assert result["student"]["test_accuracy"] >= 0.85, result["student"]
    assert any("distilbert reads its layers" in e.message for e in events), [
        e.message for e in events
    ]

    files = Path(settings.artifact_url) / "jobs" / job_id
    manifest = json.loads((files / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask"]
    call = manifest["preprocessing"]["call"]
    assert manifest["preprocessing"]["kind"] == "hf-tokenizer-v1", manifest["preprocessing"]

    # The test split, as a user has it: texts and labels.
    _, rows = fixed_test_split(len(labelled))
    test_texts = [labelled[i][0] for i in rows]
    labels = np.array([labelled[i][1] for i in rows])

    # The folder transformers loads, with its tokenizer.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    unzipped = tmp_path / "student"
    with zipfile.ZipFile(io.BytesIO((files / "student-hf.zip").read_bytes())) as archive:
        archive.extractall(unzipped)
    tokenizer = AutoTokenizer.from_pretrained(unzipped / "student", local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        unzipped / "student", local_files_only=True
    ).eval()
    assert (model.config.num_hidden_layers, model.config.intermediate_size) == (2, 16)
    tokens = tokenizer(test_texts, return_tensors="np", **call)
    feed = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    assert abs(accuracy(logits, labels) - result["student"]["test_accuracy"]) < 1e-3

    # ONNX, float and int8, fed the tokenizer's ids of each text alone (dynamic int8 takes
    # its activation ranges per run: the report measures each text at batch 1).
    alone = [tokenizer([text], return_tensors="np", **call) for text in test_texts]
    for name, row in (("student.onnx", result["student"]), ("student.int8.onnx", result["int8"])):
        session = onnxruntime.InferenceSession(str(files / name))
        logits = np.concatenate(
            [session.run(None, {k: t[k].astype(np.int64) for k in feed})[0] for t in alone]
        )
        assert abs(accuracy(logits, labels) - row["test_accuracy"]) < 1e-3
    assert result["int8"]["mode"] == "dynamic" and result["int8"]["calibration"] is None
    assert result["int8"]["bytes"] < result["int8"]["float_onnx"]["bytes"], result["int8"]

    # The frontier times and scores the teacher too, and how often each agrees with it.
    frontier = {row["model"]: row for row in result["frontier"]["rows"]}
    assert set(frontier) == {"teacher", "baseline", "student", "int8"}
    assert frontier["teacher"]["latency_ms_p50"] is not None
    assert frontier["student"]["top1_agreement"] >= 0.8, frontier["student"]
