"""Teacher sources: uploaded weights, an ONNX model and precomputed logits label the data
instead of a teacher the pipeline trains."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from app.models import JobStatus
from app.settings import Settings
from tests.worker.test_file_jobs import artifact, job_spec
from tests.worker.test_pipeline import load, submit
from tests.worker.uploads import add_dataset, add_logits, add_teacher, clusters
from worker import export, lifecycle
from worker.models import build_model

ARCH = {"arch": "mlp", "params": {"hidden": [32]}}


def trained_teacher(x: np.ndarray, y: np.ndarray) -> nn.Module:
    """A zoo mlp trained outside the service (plain PyTorch) on raw inputs."""
    torch.manual_seed(0)
    model = build_model("mlp", ARCH["params"], x.shape[1:], 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        loss = nn.functional.cross_entropy(model(xt), yt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


class Files:
    """A dataset file (fixed test split), an unlabelled transfer file, and a teacher trained
    outside the service, uploaded as weights, as ONNX and as logits."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.x, self.y = clusters(300)
        self.transfer_x = clusters(100, seed=2)[0]
        self.dataset = add_dataset(settings, tmp, self.x, self.y)
        self.transfer = add_dataset(settings, tmp, self.transfer_x)
        self.teacher = trained_teacher(self.x, self.y)
        with torch.no_grad():
            rows = np.concatenate([self.x, self.transfer_x])
            self.logits = self.teacher(torch.from_numpy(rows)).numpy()
        self.settings, self.tmp = settings, tmp

    def weights(self, model: nn.Module | None = None) -> str:
        path = self.tmp / "teacher.safetensors"
        state = (model or self.teacher).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return add_teacher(self.settings, self.tmp, path, "safetensors")

    def onnx(self, model: nn.Module | None = None, width: int = 12) -> str:
        path = self.tmp / "teacher.onnx"
        export.export_onnx(model or self.teacher, torch.zeros(2, width), path)
        return add_teacher(self.settings, self.tmp, path, "onnx")

    def spec(self, teacher: dict[str, Any]) -> dict[str, Any]:
        return job_spec(f"file:{self.dataset}", f"file:{self.transfer}", teacher=teacher)


@pytest.fixture
def files(sqlite_settings: Settings, tmp_path: Path) -> Files:
    return Files(sqlite_settings, tmp_path)


def run(settings: Settings, spec: dict[str, Any]) -> tuple[Any, list, list]:
    job_id = submit(settings, spec)
    lifecycle.run(job_id, settings)
    job, events, metrics, _ = load(settings, job_id)
    return job, events, metrics


def soft_label_key(events: list) -> str:
    return next(e.data["key"] for e in events if e.data and "key" in e.data)


def test_weights_onnx_and_logits_teachers_label_the_data_without_pretraining(
    files: Files,
) -> None:
    settings = files.settings
    teachers = {
        "weights": {"source": "weights", **ARCH, "file_id": files.weights()},
        "onnx": {"source": "onnx", "file_id": files.onnx()},
        "logits": {"source": "logits", "file_id": add_logits(settings, files.tmp, files.logits)},
        "train": {
            "source": "train",
            **ARCH,
            "train": {"epochs": 4, "batch_size": 32, "lr": 0.01},
        },
    }
    keys = {}
    reports = {}
    for source, teacher in teachers.items():
        job, events, metrics = run(settings, files.spec(teacher))
        assert job.status == JobStatus.SUCCEEDED, (source, job.error)
        stages = [e.message for e in events if e.kind == "stage"]
        assert "pretrain_teacher" in stages
        trained = {m.stage for m in metrics}
        assert ("pretrain_teacher" in trained) == (source == "train")
        if source != "train":
            assert any(e.message == f"teacher from {source}: no pretraining" for e in events)
        keys[source] = soft_label_key(events)
        manifest = json.loads(artifact(settings, job.id, "manifest.json").read_text())
        assert manifest["teacher"]["source"] == source
        if source != "train":
            assert manifest["teacher"]["file_id"] == teacher["file_id"]
        reports[source] = job.result
    assert len(set(keys.values())) == 4  # each teacher's own soft labels

    for report in reports.values():
        assert report["student"]["test_accuracy"] > 0.7
    # The same teacher three ways: the same test accuracy on the fixed test split, and the
    # same soft labels (up to float16), so the same student.
    accuracy = reports["weights"]["teacher"]["test_accuracy"]
    assert accuracy > 0.8
    for source in ("onnx", "logits"):
        assert reports[source]["teacher"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
        assert reports[source]["student"]["test_accuracy"] == pytest.approx(
            reports["weights"]["student"]["test_accuracy"], abs=0.02
        )
    weights, onnx, logits = (reports[s]["teacher"] for s in ("weights", "onnx", "logits"))
    assert weights["params"] == 12 * 32 + 32 + 32 * 3 + 3
    assert onnx["params"] > 0 and onnx["latency_ms_cpu"] > 0 and onnx["bytes"] > 0
    assert logits["params"] is None and logits["latency_ms_cpu"] is None
    assert reports["logits"]["compression"]["param_ratio"] is None
    assert reports["logits"]["compression"]["accuracy_retention"] is not None
    assert set(logits) == {
        "source",
        "file_id",
        "params",
        "bytes",
        "test_accuracy",
        "test_loss",
        "latency_ms_cpu",
    }


def test_weights_of_another_arch_fail_at_validate_naming_the_tensors(files: Files) -> None:
    file_id = files.weights()
    wrong = {"source": "weights", "arch": "mlp", "params": {"hidden": [16, 8]}, "file_id": file_id}
    spec = files.spec(wrong)
    job, _, metrics = run(files.settings, spec)
    assert job.status == JobStatus.FAILED and metrics == []
    assert job.error["stage"] == "validate" and job.error["param"] == "teacher.file_id"
    message = job.error["message"]
    assert "missing ['net.5.bias', 'net.5.weight']" in message
    assert "'net.3.weight': ([3, 32], [8, 16])" in message
    assert "'net.1.weight': ([32, 12], [16, 12])" in message


def test_weights_may_be_the_bare_network_without_normalisation(files: Files) -> None:
    file_id = files.weights(files.teacher.net)  # type: ignore[arg-type]
    job, _, _ = run(files.settings, files.spec({"source": "weights", **ARCH, "file_id": file_id}))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["teacher"]["test_accuracy"] > 0.8


def test_logits_of_the_wrong_row_count_fail_at_validate(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_id = add_logits(files.settings, files.tmp, files.logits[:-1])
    # The API refuses such a job already; the worker checks again on the prepared arrays.
    monkeypatch.setattr("app.jobs.service.check_job_files", lambda *_args: [])
    job, _, metrics = run(files.settings, files.spec({"source": "logits", "file_id": file_id}))
    assert job.status == JobStatus.FAILED and metrics == []
    assert job.error["stage"] == "validate" and job.error["param"] == "teacher.file_id"
    assert "has 399 rows; the job needs 400" in job.error["message"]


def test_an_onnx_model_for_other_inputs_fails_at_validate(files: Files) -> None:
    other = nn.Sequential(nn.Linear(10, 3))
    file_id = files.onnx(other, width=10)
    job, _, _ = run(files.settings, files.spec({"source": "onnx", "file_id": file_id}))
    assert job.status == JobStatus.FAILED
    assert job.error["stage"] == "validate" and job.error["param"] == "teacher.file_id"
    assert "input of shape" in job.error["message"]
