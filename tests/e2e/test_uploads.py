"""Bring your own data and teacher, end to end: upload over HTTP to a real uvicorn process,
run a job per teacher source and per dataset format, download the student and run it in
onnxruntime on the raw test inputs: the accuracy is the reported one."""

import csv
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from app.files.splits import fixed_test_split
from tests.e2e.conftest import Service, free_port, start, uvicorn_argv, wait_for_job, wait_ready

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
STUDENT = {"arch": "mlp", "params": {"hidden": [16]}}
DISTILL = {"epochs": 6, "batch_size": 64, "temperature": 3.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Service]]]:
    """One embedded service (SQLite, in-process runner) for every upload test."""
    tmp = tmp_path_factory.mktemp("uploads")
    services: list[Service] = []
    port = free_port()
    env = {
        "DISTILLERY_DATABASE_URL": f"sqlite:///{tmp / 'distillery.db'}",
        "DISTILLERY_ARTIFACT_URL": str(tmp / "artifacts"),
        "DISTILLERY_WORK_DIR": str(tmp / "work"),
        "DISTILLERY_BROKER_URL": "",
    }
    api = start(services, "api", uvicorn_argv(port), env, tmp)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, api)
    yield url, services
    for service in reversed(services):
        service.stop()


def upload(url: str, path: Path, purpose: str, **fields: str) -> dict[str, Any]:
    """POST /v1/files and wait until the check has finished; returns the ready file."""
    with path.open("rb") as f:
        response = httpx.post(
            f"{url}/v1/files",
            files={"file": (path.name, f)},
            data={"purpose": purpose, **fields},
            timeout=60,
        )
    assert response.status_code == 201, response.text
    file = response.json()
    deadline = time.monotonic() + 60
    while file["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(0.2)
        file = httpx.get(f"{url}/v1/files/{file['id']}").json()
    assert file["status"] == "ready", file
    return dict(file)


def run_job(url: str, services: list[Service], spec: dict[str, Any]) -> dict[str, Any]:
    created = httpx.post(f"{url}/v1/jobs", json=spec)
    assert created.status_code == 201, created.text
    job = wait_for_job(url, created.json()["id"], 300, services)
    assert job["status"] == "succeeded", job["error"]
    return job


def student_accuracy(url: str, job: dict[str, Any], x: np.ndarray, y: np.ndarray) -> float:
    """Download student.onnx and score it on raw inputs, as a user would."""
    import onnxruntime

    content = httpx.get(f"{url}/v1/jobs/{job['id']}/artifacts/student.onnx").content
    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": x.astype(np.float32)})[0]
    accuracy = float((logits.argmax(1) == y).mean())
    assert abs(accuracy - job["result"]["student"]["test_accuracy"]) < 1e-3
    return accuracy


def digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def train_torch_teacher(x: np.ndarray, y: np.ndarray, net: nn.Module) -> nn.Module:
    """A teacher trained outside the service, by a plain PyTorch loop."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y)
    for _ in range(150):
        index = torch.randint(0, len(xt), (128,))
        loss = nn.functional.cross_entropy(net(xt[index]), yt[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


class Scaled(nn.Module):
    """A teacher that takes raw digits pixels (0..16, or 0..255 from PNGs) and scales them."""

    def __init__(self, scale: float, net: nn.Module) -> None:
        super().__init__()
        self.scale = scale
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1) / self.scale)


def test_npz_dataset_with_a_teacher_the_service_trains(
    server: tuple[str, list[Service]], tmp_path: Path
) -> None:
    url, services = server
    x, y = digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=1)
    path = tmp_path / "digits.npz"
    np.savez(
        path, x=x_train, y=y_train, x_test=x_test, y_test=y_test, class_names=np.array(CLASS_NAMES)
    )
    file = upload(url, path, "dataset")
    assert file["info"]["rows"] == len(x_train)
    assert file["info"]["test_rows"] == len(x_test)
    assert file["info"]["class_names"] == CLASS_NAMES

    job = run_job(
        url,
        services,
        {
            "dataset": {"name": f"file:{file['id']}"},
            "teacher": {"arch": "mlp", "params": {"hidden": [128]}, "train": {"epochs": 8}},
            "student": STUDENT,
            "distill": DISTILL,
        },
    )
    assert job["result"]["teacher"]["source"] == "train"
    manifest = httpx.get(f"{url}/v1/jobs/{job['id']}/artifacts/manifest.json").json()
    assert manifest["class_names"] == CLASS_NAMES
    assert manifest["teacher"]["source"] == "train"
    assert student_accuracy(url, job, x_test, y_test) > 0.8


def test_csv_dataset_with_uploaded_teacher_weights(
    server: tuple[str, list[Service]], tmp_path: Path
) -> None:
    url, services = server
    x, y = digits()
    path = tmp_path / "digits.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"p{i}" for i in range(64)] + ["digit"])
        for row, label in zip(x, y, strict=True):
            writer.writerow([*(int(v) for v in row), CLASS_NAMES[label]])
    file = upload(url, path, "dataset", label_column="digit")
    assert file["info"]["class_names"] == sorted(CLASS_NAMES)
    # String labels become class indices in sorted order.
    y_sorted = np.array([sorted(CLASS_NAMES).index(CLASS_NAMES[label]) for label in y])
    train_rows, test_rows = fixed_test_split(len(x))

    # The teacher: the zoo's `mlp` [64] trained outside the service on the training rows.
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    train_torch_teacher(x[train_rows] / 16, y_sorted[train_rows], Scaled(16.0, net))
    weights = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    teacher = upload(url, weights, "teacher")
    assert teacher["info"]["format"] == "safetensors"

    job = run_job(
        url,
        services,
        {
            "dataset": {"name": f"file:{file['id']}"},
            "teacher": {
                "source": "weights",
                "arch": "mlp",
                "params": {"hidden": [64]},
                "file_id": teacher["id"],
            },
            "student": STUDENT,
            "distill": DISTILL,
        },
    )
    stages = httpx.get(f"{url}/v1/jobs/{job['id']}/metrics").json()["data"]
    assert not [m for m in stages if m["stage"] == "pretrain_teacher"]
    assert job["result"]["teacher"]["source"] == "weights"
    assert job["result"]["teacher"]["test_accuracy"] is not None
    assert student_accuracy(url, job, x[test_rows], y_sorted[test_rows]) > 0.7


def digits_zip(path: Path, x: np.ndarray, y: np.ndarray, split: np.ndarray) -> None:
    """train/<class>/<n>.png and test/<class>/<n>.png, 8x8 grayscale."""
    with zipfile.ZipFile(path, "w") as archive:
        for n, (image, label) in enumerate(zip(x, y, strict=True)):
            pixels = (image.reshape(8, 8) * 15).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
            folder = "test" if split[n] else "train"
            archive.writestr(f"{folder}/{CLASS_NAMES[label]}/{n}.png", buffer.getvalue())


def test_image_zip_with_an_onnx_teacher(server: tuple[str, list[Service]], tmp_path: Path) -> None:
    url, services = server
    x, y = digits()
    is_test = np.zeros(len(x), dtype=bool)
    is_test[fixed_test_split(len(x))[1]] = True
    path = tmp_path / "digits.zip"
    digits_zip(path, x, y, is_test)
    file = upload(url, path, "dataset", image_size="8", channels="1")
    assert file["info"]["input_shape"] == [1, 8, 8]
    assert file["info"]["test_rows"] == int(is_test.sum())
    pixels = (x.reshape(-1, 1, 8, 8) * 15).astype(np.uint8).astype(np.float32)
    y_sorted = np.array([sorted(CLASS_NAMES).index(CLASS_NAMES[label]) for label in y])

    teacher = Scaled(255.0, nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)))
    train_torch_teacher(pixels[~is_test], y_sorted[~is_test], teacher)
    onnx_path = tmp_path / "teacher.onnx"
    torch.onnx.export(
        teacher,
        (torch.from_numpy(pixels[:2]),),
        str(onnx_path),
        input_names=["pixels"],
        output_names=["scores"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1 << 20)},),
        dynamo=True,
        external_data=False,
    )
    onnx_file = upload(url, onnx_path, "teacher")
    assert onnx_file["info"]["input"]["name"] == "pixels"

    job = run_job(
        url,
        services,
        {
            "dataset": {"name": f"file:{file['id']}"},
            "teacher": {"source": "onnx", "file_id": onnx_file["id"]},
            "student": {"arch": "mlp", "params": {"hidden": [32]}},
            "distill": DISTILL,
        },
    )
    assert job["result"]["teacher"]["source"] == "onnx"
    assert job["result"]["teacher"]["test_accuracy"] > 0.8
    accuracy = student_accuracy(url, job, pixels[is_test], y_sorted[is_test])
    assert accuracy > 0.7


def test_precomputed_logits_with_an_unlabelled_transfer_file(
    server: tuple[str, list[Service]], tmp_path: Path
) -> None:
    url, services = server
    x, y = digits()
    x_main, x_transfer, y_main, _ = train_test_split(x, y, test_size=0.4, random_state=2)
    train_rows, test_rows = fixed_test_split(len(x_main))
    dataset_path, transfer_path = tmp_path / "digits.npz", tmp_path / "unlabelled.npz"
    np.savez(dataset_path, x=x_main, y=y_main)
    np.savez(transfer_path, x=x_transfer)
    dataset = upload(url, dataset_path, "dataset")
    transfer = upload(url, transfer_path, "dataset")
    assert transfer["info"]["labelled"] is False

    # Only the teacher's outputs leave the premises: one row per dataset row, then transfer rows.
    teacher = Scaled(16.0, nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)))
    train_torch_teacher(x_main[train_rows], y_main[train_rows], teacher)
    with torch.no_grad():
        logits = teacher(torch.from_numpy(np.concatenate([x_main, x_transfer]))).numpy()
    logits_path = tmp_path / "logits.npy"
    np.save(logits_path, logits)
    logits_file = upload(url, logits_path, "logits")
    assert logits_file["info"]["rows"] == len(x)

    spec = {
        "dataset": {
            "name": f"file:{dataset['id']}",
            "transfer": {"name": f"file:{transfer['id']}"},
        },
        "teacher": {"source": "logits", "file_id": logits_file["id"]},
        "student": STUDENT,
        "distill": DISTILL,
    }
    job = run_job(url, services, spec)
    assert job["result"]["teacher"]["source"] == "logits"
    events = httpx.get(f"{url}/v1/jobs/{job['id']}/events").json()["data"]
    assert json.dumps(events).count("transfer") >= 1
    assert student_accuracy(url, job, x_main[test_rows], y_main[test_rows]) > 0.7

    # A file a finished job used can be deleted; a live one cannot (checked in the API tests).
    assert httpx.delete(f"{url}/v1/files/{logits_file['id']}").status_code == 200
