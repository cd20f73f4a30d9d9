"""Jobs on uploaded datasets: own or fixed test split, unlabelled transfer files, and datasets
larger than the worker's memory budget (read from disk batch by batch)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from app.files.splits import DESCRIPTION, fixed_test_split
from app.models import JobStatus
from app.settings import Settings
from tests.worker.test_pipeline import ASKED_FOR, load, submit
from tests.worker.uploads import add_dataset, clusters
from worker import lifecycle
from worker.stages import STAGE_NAMES


def job_spec(dataset: str, transfer: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dataset": {"name": dataset},
        "teacher": {
            "arch": "mlp",
            "params": {"hidden": [32]},
            "train": {"epochs": 4, "batch_size": 32, "lr": 0.01},
        },
        "student": {"arch": "mlp", "params": {"hidden": [4]}},
        "distill": {"epochs": 3, "batch_size": 32, "lr": 0.01},
        "baseline": False,
        "export": ["safetensors"],
    }
    if transfer is not None:
        spec["dataset"]["transfer"] = {"name": transfer}
    return {**spec, **extra}


def run_job(settings: Settings, spec: dict[str, Any]) -> tuple[Any, list, list]:
    job_id = submit(settings, spec)
    lifecycle.run(job_id, settings)
    job, events, metrics, _ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job, events, metrics


def artifact(settings: Settings, job_id: str, name: str) -> Path:
    return Path(settings.artifact_url) / "jobs" / job_id / name


def test_a_file_dataset_with_an_unlabelled_transfer_file_runs_every_stage(
    settings: Settings, tmp_path: Path
) -> None:
    x, y = clusters(300)
    x_test, y_test = clusters(100, seed=1)
    names = ["left", "middle", "right"]
    dataset = add_dataset(settings, tmp_path, x, y, x_test, y_test, names)
    transfer = add_dataset(settings, tmp_path, clusters(150, seed=2)[0])
    spec = job_spec(f"file:{dataset}", f"file:{transfer}", export=["onnx"], baseline=True)
    job, events, _ = run_job(settings, spec)
    assert [e.message for e in events if e.kind == "stage"] == [
        s for s in STAGE_NAMES if s not in ASKED_FOR
    ]
    result = job.result
    assert result["teacher"]["source"] == "train" and result["teacher"]["arch"] == "mlp"
    assert result["dataset"]["test_split"] == "the file's own x_test / y_test"
    assert result["dataset"]["transfer"] == 150
    manifest = json.loads(artifact(settings, job.id, "manifest.json").read_text())
    assert manifest["class_names"] == names
    assert manifest["teacher"] == {
        "source": "train",
        "arch": "mlp",
        "arch_params": {"hidden": [32], "dropout": 0.0},
    }
    assert manifest["dataset"]["test_split"] == "the file's own x_test / y_test"
    # The exported student on the file's raw x_test gives the reported accuracy.
    session = onnxruntime.InferenceSession(str(artifact(settings, job.id, "student.onnx")))
    logits = session.run(None, {"x": x_test})[0]
    accuracy = float((logits.argmax(1) == y_test).mean())
    assert accuracy == pytest.approx(result["student"]["test_accuracy"], abs=1e-4)
    assert accuracy > 0.8


def test_a_file_without_test_arrays_is_tested_on_the_fixed_split(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    x, y = clusters(250)
    dataset = add_dataset(sqlite_settings, tmp_path, x, y)
    job, _, _ = run_job(sqlite_settings, job_spec(f"file:{dataset}"))
    _, test_rows = fixed_test_split(250)
    assert job.result["dataset"]["test_split"] == DESCRIPTION
    assert job.result["dataset"]["test"] == len(test_rows)
    assert job.result["dataset"]["class_names"] == ["0", "1", "2"]
    assert job.result["teacher"]["test_accuracy"] > 0.8


def test_a_dataset_over_the_memory_budget_trains_from_disk_to_the_same_accuracy(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    # 2,000 uint8 images 1x16x16: 2 MB as float32, against a 64 KiB budget.
    x, y = clusters(2000, shape=(1, 16, 16), uint8=True)
    x_test, y_test = clusters(300, shape=(1, 16, 16), seed=1, uint8=True)
    dataset = add_dataset(sqlite_settings, tmp_path, x, y, x_test, y_test)
    spec = job_spec(f"file:{dataset}", baseline=True)
    results = {}
    for budget in (sqlite_settings.worker_memory_bytes, 64 * 1024):
        settings = sqlite_settings.model_copy(update={"worker_memory_bytes": budget})
        job, events, metrics = run_job(settings, spec)
        validate = next(e for e in events if e.kind == "info" and "train," in e.message)
        results[validate.data["in_memory"]] = job.result
        assert {m.stage for m in metrics} == {"pretrain_teacher", "distill", "baseline"}
    memory, disk = results[True], results[False]
    for model in ("teacher", "student", "baseline"):
        assert disk[model]["test_accuracy"] == pytest.approx(
            memory[model]["test_accuracy"], abs=0.01
        )
    assert disk["teacher"]["test_accuracy"] > 0.8
    manifest = json.loads(artifact(sqlite_settings, job.id, "manifest.json").read_text())
    assert manifest["input"] == {"name": "x", "shape": [None, 1, 16, 16], "dtype": "float32"}
    assert manifest["dataset"]["dtype"] == "uint8"
    assert np.asarray(manifest["preprocessing"]["normalization"]["mean"]).shape == (1, 1, 1)
