"""The job the end-to-end tests submit and what a user checks on the result."""

from pathlib import Path
from typing import Any

import httpx
import numpy as np

DIGITS_JOB: dict[str, Any] = {
    "name": "e2e-digits",
    "dataset": {"name": "digits"},
    "teacher": {
        "arch": "mlp",
        "params": {"hidden": [128]},
        "train": {"epochs": 8, "batch_size": 64},
    },
    "student": {"arch": "mlp", "params": {"hidden": [12]}},
    "distill": {"epochs": 6, "batch_size": 64, "temperature": 3.0},
    "metadata": {"suite": "e2e"},
}


def check_downloaded_student(url: str, job: dict[str, Any], folder: Path) -> None:
    """Download student.onnx, run it in onnxruntime on the raw digits test split (rebuilt the
    way the manifest describes) and compare with the reported accuracy."""
    import onnxruntime
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    job_id = job["id"]
    listing = httpx.get(f"{url}/v1/jobs/{job_id}/artifacts").json()["data"]
    by_name = {a["name"]: a for a in listing}
    assert set(by_name) == {
        "student.safetensors",
        "student.onnx",
        "student.ts",
        "manifest.json",
        "report.json",
        "metrics.csv",
        "frontier.svg",
    }
    response = httpx.get(f"{url}/v1/jobs/{job_id}/artifacts/student.onnx")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == by_name["student.onnx"]["bytes"]
    assert response.headers["etag"] == f'"{by_name["student.onnx"]["sha256"]}"'
    path = folder / "student.onnx"
    path.write_bytes(response.content)
    # Nothing of the server in the graph: no stack traces, no file paths of the worker.
    assert b"stack_trace" not in response.content and b"worker/models" not in response.content

    manifest = httpx.get(f"{url}/v1/jobs/{job_id}/artifacts/manifest.json").json()
    assert manifest["input"] == {"name": "x", "shape": [None, 64], "dtype": "float32"}
    assert manifest["files"]["student.onnx"]["sha256"] == by_name["student.onnx"]["sha256"]

    digits = load_digits()
    _, x_test, _, y_test = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": x_test.astype(np.float32)})[0]
    accuracy = float((logits.argmax(1) == y_test).mean())
    reported = job["result"]["student"]["test_accuracy"]
    assert abs(accuracy - reported) < 1e-3, (accuracy, reported)
    assert accuracy > 0.8
    assert job["result"]["teacher"]["params"] >= 10 * job["result"]["student"]["params"]
