"""Every distillation method runs a job to `succeeded` on `resnet_cifar` and on `cnn1d`, and
the student it exports is the plain student: same weights' names, no hooks, no extra parts."""

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from safetensors.numpy import load_file

from app.models import JobStatus
from app.settings import Settings
from tests.worker.test_pipeline import load, submit
from worker import lifecycle
from worker.models import build_model

ARCHS: dict[str, dict[str, Any]] = {
    "resnet_cifar": {
        "dataset": {
            "name": "synthetic",
            "options": {"shape": [3, 8, 8], "num_classes": 3, "num_samples": 96},
        },
        "teacher": {"arch": "resnet_cifar", "params": {"depth": 14}},
        "student": {"arch": "resnet_cifar", "params": {"depth": 8}},
    },
    "cnn1d": {
        "dataset": {"name": "mnist1d", "options": {"num_samples": 200}},
        "teacher": {"arch": "cnn1d", "params": {"channels": 16}},
        "student": {"arch": "cnn1d", "params": {"channels": 4}},
    },
}
PAIRS = {
    "resnet_cifar": [
        {"student": "stage2", "teacher": "stage2"},
        {"student": "stage3", "teacher": "stage3"},
    ],
    "cnn1d": [{"student": "conv2", "teacher": "conv3"}],
}


def method_params(method: str, arch: str) -> dict[str, Any]:
    if method == "fitnets":
        return {"hints": PAIRS[arch]}
    if method == "at":
        return {"pairs": PAIRS[arch]}
    return {}


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("method", ["kd", "dkd", "fitnets", "at"])
def test_each_method_distils_a_student(
    sqlite_settings: Settings, tmp_path: Path, method: str, arch: str
) -> None:
    spec = {
        **ARCHS[arch],
        "distill": {
            "method": method,
            "method_params": method_params(method, arch),
            "epochs": 2,
            "batch_size": 32,
        },
        "baseline": False,
        # ONNX export is the slow part: once per arch, for a method that taps layers.
        "export": ["safetensors", "onnx"] if method == "at" else ["safetensors"],
    }
    spec["teacher"]["train"] = {"epochs": 1, "batch_size": 32}
    job_id = submit(sqlite_settings, spec)
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    distilled = [m for m in metrics if m.stage == "distill"]
    assert len(distilled) == 2 and all(np.isfinite(m.values["train_loss"]) for m in distilled)
    messages = " ".join(e.message for e in events)
    assert ("reads its layers" in messages) == (method in ("fitnets", "at"))

    # The exported student is the plain student arch: the same weights' names and shapes.
    store = sqlite_settings.artifact_url
    names = {a.name: a for a in artifacts}
    weights = load_file(str(Path(store) / names["student.safetensors"].storage_key))
    if arch == "resnet_cifar":
        plain = build_model("resnet_cifar", job.spec["student"]["params"], (3, 8, 8), 3)
    else:
        plain = build_model("cnn1d", job.spec["student"]["params"], (40,), 10)
    assert set(weights) == set(plain.state_dict())
    # (the normalisation buffers take the dataset's shape; the network's are the arch's)
    assert {k: v.shape for k, v in weights.items() if k.startswith("net.")} == {
        k: tuple(v.shape) for k, v in plain.state_dict().items() if k.startswith("net.")
    }
    if method != "at":
        return
    onnx = onnxruntime.InferenceSession(str(Path(store) / names["student.onnx"].storage_key))
    shape = (2, 3, 8, 8) if arch == "resnet_cifar" else (2, 40)
    (logits,) = onnx.run(None, {onnx.get_inputs()[0].name: np.zeros(shape, np.float32)})
    assert logits.shape == (2, 3 if arch == "resnet_cifar" else 10)


def test_top_k_soft_labels_distil_a_student(sqlite_settings: Settings) -> None:
    spec = {
        **ARCHS["cnn1d"],
        "distill": {"epochs": 1, "batch_size": 32, "soft_label_top_k": 3},
        "baseline": False,
        "export": ["safetensors"],
    }
    spec["teacher"]["train"] = {"epochs": 1, "batch_size": 32}
    job_id = submit(sqlite_settings, spec)
    lifecycle.run(job_id, sqlite_settings)
    job, events, _, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    (stored,) = [e for e in events if e.message.startswith("soft labels written")]
    assert "top-3" in stored.message and stored.data["top_k"] == 3


def test_fitnets_hint_epochs_run_the_papers_first_stage(sqlite_settings: Settings) -> None:
    spec = {
        **ARCHS["cnn1d"],
        "distill": {
            "method": "fitnets",
            "method_params": {"hints": PAIRS["cnn1d"], "hint_epochs": 3},
            "epochs": 1,
            "batch_size": 32,
        },
        "baseline": False,
        "export": ["safetensors"],
    }
    spec["teacher"]["train"] = {"epochs": 1, "batch_size": 32}
    job_id = submit(sqlite_settings, spec)
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    stages = [e.message for e in events if e.kind == "stage"]
    assert stages.index("soft_labels") < stages.index("hints") < stages.index("distill")
    assert job.progress is not None and job.progress["fraction"] == 1.0
    # The hints stage learns the hint term alone: it falls epoch over epoch.
    hints = [m.values["train_loss"] for m in metrics if m.stage == "hints"]
    assert len(hints) == 3 and hints[-1] < hints[0]
    assert len([m for m in metrics if m.stage == "distill"]) == 1
    assert "distill: starting from the student the hints stage trained" in [
        e.message for e in events
    ]
