"""A worker distils a dataset several times larger than its memory budget, with bounded memory.

Starts the embedded service in a temporary folder with DISTILLERY_WORKER_MEMORY_BYTES set to
--budget-mib, uploads a synthetic .npz of --gib GiB over HTTP, runs a one-epoch-per-stage job
and reports the worker process's peak RSS (the job's "peak memory" event) next to the dataset
size and the budget.

    .venv/bin/python benchmarks/worker_memory.py --gib 1.5 --budget-mib 256
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 1024
CLASSES = 10


def write_dataset(folder: Path, gib: float) -> tuple[Path, int]:
    """Gaussian class clusters, float32 (rows, 1024), written in chunks into an .npz."""
    rows = int(gib * 1024**3) // (FEATURES * 4)
    rng = np.random.default_rng(0)
    means = rng.normal(size=(CLASSES, FEATURES)).astype(np.float32) * 0.2
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (rows, FEATURES))
    y = rng.integers(0, CLASSES, size=rows)
    for start in range(0, rows, 16384):
        stop = min(start + 16384, rows)
        noise = rng.standard_normal((stop - start, FEATURES), dtype=np.float32)
        x[start:stop] = means[y[start:stop]] + noise
    x.flush()
    path = folder / "big.npz"
    np.savez(path, x=x, y=y)
    del x
    (folder / "x.npy").unlink()
    return path, rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.5)
    parser.add_argument("--budget-mib", type=int, default=256)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "worker_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp_name:
        tmp = Path(tmp_name)
        dataset, rows = write_dataset(tmp, args.gib)
        env = {
            **os.environ,
            "DISTILLERY_DATABASE_URL": f"sqlite:///{tmp / 'distillery.db'}",
            "DISTILLERY_ARTIFACT_URL": str(tmp / "store"),
            "DISTILLERY_WORK_DIR": str(tmp / "work"),
            "DISTILLERY_MAX_UPLOAD_BYTES": str(dataset.stat().st_size + 1024**2),
            "DISTILLERY_WORKER_MEMORY_BYTES": str(args.budget_mib * 1024**2),
            "DISTILLERY_LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(args.port)]
        api = subprocess.Popen([*argv, "--log-level", "warning"], cwd=ROOT, env=env)
        url = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            out = subprocess.run(
                [
                    "curl",
                    "-sS",
                    "-F",
                    f"file=@{dataset}",
                    "-F",
                    "purpose=dataset",
                    f"{url}/v1/files",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            file = json.loads(out)
            while file["status"] == "processing":
                time.sleep(1)
                file = httpx.get(f"{url}/v1/files/{file['id']}").json()
            assert file["status"] == "ready", file
            spec = {
                "dataset": {"name": f"file:{file['id']}"},
                "teacher": {"arch": "mlp", "params": {"hidden": [64]}, "train": {"epochs": 1}},
                "student": {"arch": "mlp", "params": {"hidden": [8]}},
                "distill": {"epochs": 1, "batch_size": 256},
                "export": ["onnx"],
            }
            started = time.perf_counter()
            job = httpx.post(f"{url}/v1/jobs", json=spec).json()
            while job["status"] not in ("succeeded", "failed", "cancelled"):
                time.sleep(2)
                job = httpx.get(f"{url}/v1/jobs/{job['id']}").json()
            seconds = time.perf_counter() - started
            events = httpx.get(f"{url}/v1/jobs/{job['id']}/events?limit=1000").json()["data"]
        finally:
            api.terminate()
            api.wait(timeout=30)
    peak = [e["data"]["peak_rss_mib"] for e in events if (e["data"] or {}).get("peak_rss_mib")]
    dataset_mib = rows * FEATURES * 4 / 1024**2
    result = {
        "dataset_rows": rows,
        "dataset_mib": round(dataset_mib),
        "worker_memory_budget_mib": args.budget_mib,
        "worker_peak_rss_mib": peak[-1] if peak else None,
        "job_status": job["status"],
        "job_seconds": round(seconds, 1),
        "student_test_accuracy": (job.get("result") or {}).get("student", {}).get("test_accuracy"),
        "machine": f"{os.cpu_count()} cores",
    }
    for key, value in result.items():
        print(f"{key:<28} {value}")
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if job["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
