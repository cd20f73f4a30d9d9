"""A `language_model` job on the builtin text corpus, end to end: a byte-level GPT teacher, a
distilled GPT student and its from-scratch baseline, measured in bits per byte, and an ONNX
student that gives the reported test loss when run on the raw test bytes."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file

from app.models import JobStatus
from app.settings import Settings
from tests.worker.test_pipeline import load, submit
from worker import lifecycle
from worker.data import load_dataset
from worker.stages.teacher_text import TeacherText

TINY_LM: dict[str, Any] = {
    "task": "language_model",
    "dataset": {"name": "pystdlib", "options": {"context": 32, "max_bytes": 40_000}},
    "teacher": {
        "arch": "gpt",
        "params": {"layers": 2, "heads": 2, "dim": 32, "context": 32},
        "train": {"epochs": 2, "batch_size": 32, "optimizer": "adamw", "lr": 0.003},
    },
    "student": {"arch": "gpt", "params": {"layers": 1, "heads": 1, "dim": 16, "context": 32}},
    "distill": {"epochs": 2, "batch_size": 32, "optimizer": "adamw", "lr": 0.003},
    "export": ["safetensors", "onnx"],
}


def test_a_language_model_job_reports_bits_per_byte_and_exports_onnx(
    sqlite_settings: Settings,
) -> None:
    job_id = submit(sqlite_settings, TINY_LM)
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    messages = [e.message for e in events]
    # The teacher's logits go to the store, a row per token.
    assert any(
        "soft labels, a row per position (32 an example) written to the store" in m
        for m in messages
    ), messages
    samples = job.result["samples"]
    assert set(samples) == {"prompt", "temperature", "teacher", "student", "baseline"}
    assert all(
        len(samples[m]["text"]) > 0 and samples[m]["tokens_per_second_cpu"] > 0
        for m in ("teacher", "student", "baseline")
    )
    assert all(
        m.values["tokens_per_second"] == m.values["samples_per_second"] * 32 for m in metrics
    )

    # Per-epoch validation in the task's metrics, for every training stage.
    assert {m.stage for m in metrics} == {"pretrain_teacher", "distill", "baseline"}
    for m in metrics:
        values = m.values
        assert values["val_bits_per_byte"] == values["val_loss"] / math.log(2)
        assert math.isclose(values["val_perplexity"], math.exp(values["val_loss"]))

    report = job.result
    assert report is not None and report["task"] == "language_model"
    for name in ("teacher", "student", "baseline"):
        # Bytes are 8 bits: a model that learnt anything needs fewer per byte.
        assert 0 < report[name]["test_bits_per_byte"] < 8, name
    compression = report["compression"]
    assert compression["kd_gain_unit"] == "bits_per_byte"
    assert compression["kd_gain"] == round(
        report["baseline"]["test_bits_per_byte"] - report["student"]["test_bits_per_byte"], 4
    )
    # The diagnosis: 32 KB of text is under the 1 MB it asks of a language model, which it
    # gives as the reason whenever the student gained nothing.
    diagnosis = report["diagnosis"]
    assert diagnosis["helped"] is (compression["kd_gain"] > 0)
    small = [f for f in diagnosis["findings"] if f["code"] == "transfer_set_too_small"]
    assert len(small) == (0 if diagnosis["helped"] else 1)
    assert all(f["data"]["unit"] == "bytes" for f in small)

    # The ONNX student takes int64 tokens [batch, time] and gives the reported test loss.
    store = Path(sqlite_settings.artifact_url)
    names = {a.name: a for a in artifacts}
    manifest = json.loads((store / names["manifest.json"].storage_key).read_text())
    assert manifest["input"] == {"name": "tokens", "shape": [None, 32], "dtype": "int64"}
    assert manifest["output"] == {"name": "logits", "shape": [None, 32, 256]}
    onnx = onnxruntime.InferenceSession(str(store / names["student.onnx"].storage_key))
    raw = load_dataset("pystdlib", job.spec["dataset"]["options"], sqlite_settings)
    tokens = np.asarray(raw.x_test, dtype=np.int64)
    (logits,) = onnx.run(None, {"tokens": tokens})
    loss = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits).flatten(0, 1), torch.from_numpy(raw.y_test).flatten()
    ).item()
    assert abs(loss - report["student"]["test_loss"]) < 1e-3
    # Shorter sequences run too (time is dynamic up to the context).
    (short,) = onnx.run(None, {"tokens": tokens[:2, :5]})
    assert short.shape == (2, 5, 256)
    np.testing.assert_allclose(short, logits[:2, :5], atol=1e-4)


@pytest.mark.parametrize("method", ["dkd", "reverse_kl", "jsd"])
def test_each_token_level_method_distils_a_language_model(
    sqlite_settings: Settings, method: str
) -> None:
    spec = {
        **TINY_LM,
        "distill": {**TINY_LM["distill"], "method": method, "epochs": 1},
        "teacher": {**TINY_LM["teacher"], "train": {**TINY_LM["teacher"]["train"], "epochs": 1}},
        "baseline": False,
        "export": ["safetensors"],
    }
    job_id = submit(sqlite_settings, spec)
    lifecycle.run(job_id, sqlite_settings)
    job, _, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    (distilled,) = [m for m in metrics if m.stage == "distill"]
    assert math.isfinite(distilled.values["train_loss"])
    assert job.result is not None and 0 < job.result["student"]["test_bits_per_byte"] < 8


def student_weights(settings: Settings, **distill: Any) -> dict[str, torch.Tensor]:
    spec = {
        **TINY_LM,
        "distill": {**TINY_LM["distill"], **distill},
        "baseline": False,
        "export": ["safetensors"],
    }
    job_id = submit(settings, spec)
    lifecycle.run(job_id, settings)
    job, _, _, artifacts = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    (weights,) = [a for a in artifacts if a.name == "student.safetensors"]
    return load_file(str(Path(settings.artifact_url) / weights.storage_key))


def test_stored_token_labels_train_the_student_the_online_teacher_does(
    sqlite_settings: Settings,
) -> None:
    """Full float16 rows, and top-k rows with k = 255 (every probability exact but one
    class's), read back per token, give the student the teacher running at every step gives."""
    online = student_weights(sqlite_settings, soft_labels="online")
    for stored in (
        student_weights(sqlite_settings, soft_labels="stored"),
        student_weights(sqlite_settings, soft_labels="stored", soft_label_top_k=255),
    ):
        assert stored.keys() == online.keys()
        for name in stored:
            torch.testing.assert_close(stored[name], online[name], rtol=1e-2, atol=1e-3)


def test_sequence_level_kd_learns_the_text_the_teacher_writes(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[np.ndarray, np.ndarray]] = []
    original = TeacherText._write

    def recording(self: TeacherText, job: Any, params: dict) -> np.ndarray:
        windows = original(self, job, params)
        written.append((windows, job.data.distill.head(len(windows)).numpy()))
        return windows

    monkeypatch.setattr(TeacherText, "_write", recording)
    spec = {
        **TINY_LM,
        "distill": {
            **TINY_LM["distill"],
            "method": "seqkd",
            "method_params": {"prompt_bytes": 8, "sample_temperature": 0.7},
        },
        "export": ["safetensors"],
    }
    job_id = submit(sqlite_settings, spec)
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    stages = [e.message for e in events if e.kind == "stage"]
    assert stages.index("soft_labels") < stages.index("teacher_text") < stages.index("distill")
    messages = " ".join(e.message for e in events)
    assert "soft labels: none (seqkd learns from the teacher's text)" in messages
    assert "after their first 8 bytes (T=0.7)" in messages
    # Each window keeps its first 8 real bytes; the teacher wrote the other 25 (32 + 1).
    ((windows, real),) = written
    assert windows.shape == (len(real), 33)
    assert np.array_equal(windows[:, :8], real[:, :8])
    assert not np.array_equal(windows[:, 8:32], real[:, 8:])
    assert len([m for m in metrics if m.stage == "distill"]) == 2
    assert job.result is not None and 0 < job.result["student"]["test_bits_per_byte"] < 8
