"""`compress` over HTTP, on the embedded default (one uvicorn process, SQLite, the in-process
runner): a job that prunes and quantises its student, and the three graphs a user downloads
(student.onnx, student.pruned.onnx, student.int8.onnx), each run in onnxruntime on the raw
digits test split, giving the accuracy the report states; the pruned graph really is
narrower."""

from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.e2e.conftest import Service, embedded_service, wait_for_job
from tests.e2e.jobs import DIGITS_JOB

COMPRESSED_JOB: dict[str, Any] = {
    **DIGITS_JOB,
    "name": "e2e-compress",
    "student": {"arch": "mlp", "params": {"hidden": [48, 48]}},
    "baseline": False,
    "export": ["onnx"],
    "compress": {
        "prune": {"params_ratio": 0.5, "recovery_epochs": 2},
        "quantize": {"kind": "int8", "tolerance": 1.0},
    },
}


def digits_test_split() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, x_test, _, y_test = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return x_test.astype(np.float32), y_test


def weight_widths(path: Path) -> list[int]:
    """Both sides of every weight matrix in an ONNX graph (inputs and outputs of each layer)."""
    import onnx

    graph = onnx.load(str(path)).graph
    return sorted(d for w in graph.initializer if len(w.dims) == 2 for d in w.dims)


def test_a_pruned_and_quantized_student_downloads_with_the_reports_accuracy(
    services: list[Service], tmp_path: Path
) -> None:
    import onnxruntime

    url = embedded_service(services, tmp_path)

    created = httpx.post(f"{url}/v1/jobs", json=COMPRESSED_JOB)
    assert created.status_code == 201, created.text
    job = wait_for_job(url, created.json()["id"], 300, services)
    assert job["status"] == "succeeded", job["error"]
    job_id, report = job["id"], job["result"]

    events = httpx.get(f"{url}/v1/jobs/{job_id}/events").json()["data"]
    stages = [e["message"] for e in events if e["kind"] == "stage"]
    assert stages[-5:] == ["evaluate", "prune", "quantize", "frontier", "export"]
    metrics = httpx.get(f"{url}/v1/jobs/{job_id}/metrics").json()["data"]
    assert [m["epoch"] for m in metrics if m["stage"] == "prune"] == [1, 2]

    pruned, int8 = report["pruned"], report["int8"]
    assert pruned["params"] <= 0.5 * report["student"]["params"]
    assert int8["of"] == "pruned" and int8["mode"] == "dynamic"
    assert int8["loss"]["tolerance"] == 1.0 and int8["loss"]["within"] is True
    manifest = httpx.get(f"{url}/v1/jobs/{job_id}/artifacts/manifest.json").json()
    assert manifest["metrics"]["pruned"] == pruned and manifest["metrics"]["int8"] == int8

    x_test, y_test = digits_test_split()
    widths = {}
    for name, row in (
        ("student.onnx", report["student"]),
        ("student.pruned.onnx", pruned),
        ("student.int8.onnx", int8),
    ):
        response = httpx.get(f"{url}/v1/jobs/{job_id}/artifacts/{name}")
        assert response.status_code == 200
        assert response.headers["etag"] == f'"{manifest["files"][name]["sha256"]}"'
        path = tmp_path / name
        path.write_bytes(response.content)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        logits = session.run(None, {"x": x_test})[0]
        accuracy = float((logits.argmax(1) == y_test).mean())
        assert abs(accuracy - row["test_accuracy"]) < 1e-3, (name, accuracy, row)
        widths[name] = weight_widths(path)
    # The hidden layers narrower; the 64 input features and the 10 classes kept.
    assert {64, 10} <= set(widths["student.pruned.onnx"])
    assert sum(widths["student.pruned.onnx"]) < sum(widths["student.onnx"])
