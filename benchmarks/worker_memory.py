"""A worker distils a dataset several times larger than its memory budget, with bounded memory.

Uploads a synthetic .npz of --gib GiB over HTTP to the embedded service and runs the same
one-epoch-per-stage job twice, side by side: once with DISTILLERY_WORKER_MEMORY_BYTES at
--budget-mib (the dataset is read from disk a batch at a time) and once with a budget larger
than the dataset (held in memory). Reports each worker process's peak RSS (the job's "worker
peak memory" event), the examples it trained on and its speed.

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
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 1024
CURL = ["curl", "-sS", "-F", "purpose=dataset"]
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


def run_job(url: str, file_id: str) -> dict[str, Any]:
    spec = {
        "dataset": {"name": f"file:{file_id}"},
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
    metrics = httpx.get(f"{url}/v1/jobs/{job['id']}/metrics").json()["data"]
    data = [e["data"] or {} for e in events]
    peak = [d["peak_rss_mib"] for d in data if "peak_rss_mib" in d]
    split = next((d for d in data if "train" in d and "test" in d), {})
    speed = {m["stage"]: round(m["values"]["samples_per_second"]) for m in metrics}
    return {
        "status": job["status"],
        "error": job.get("error"),
        "worker_peak_rss_mib": peak[-1] if peak else None,
        "train_examples": split.get("train"),
        "test_examples": split.get("test"),
        "samples_per_second": speed,
        "job_seconds": round(seconds, 1),
        "student_test_accuracy": (job.get("result") or {}).get("student", {}).get("test_accuracy"),
    }


def serve(tmp: Path, port: int, budget_bytes: int, max_upload: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DISTILLERY_DATABASE_URL": f"sqlite:///{tmp / 'distillery.db'}",
        "DISTILLERY_ARTIFACT_URL": str(tmp / "store"),
        "DISTILLERY_WORK_DIR": str(tmp / "work"),
        "DISTILLERY_MAX_UPLOAD_BYTES": str(max_upload),
        "DISTILLERY_WORKER_MEMORY_BYTES": str(budget_bytes),
        "DISTILLERY_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
    api = subprocess.Popen([*argv, "--log-level", "warning"], cwd=ROOT, env=env)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return api


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
        url = f"http://127.0.0.1:{args.port}"
        max_upload = dataset.stat().st_size + 1024**2
        results = {}
        for label, budget in (
            (f"budget {args.budget_mib} MiB (disk)", args.budget_mib * 1024**2),
            ("budget 8 GiB (in memory)", 8 * 1024**3),
        ):
            # The same database and store: the second server reuses the uploaded file.
            api = serve(tmp, args.port, budget, max_upload)
            try:
                if not results:
                    out = subprocess.run(
                        [*CURL, "-F", f"file=@{dataset}", f"{url}/v1/files"],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    file = json.loads(out)
                    while file["status"] == "processing":
                        time.sleep(1)
                        file = httpx.get(f"{url}/v1/files/{file['id']}").json()
                    assert file["status"] == "ready", file
                results[label] = run_job(url, file["id"])
            finally:
                api.terminate()
                api.wait(timeout=30)
    result = {
        "dataset_rows": rows,
        "dataset_mib": round(rows * FEATURES * 4 / 1024**2),
        "runs": results,
        "machine": f"{os.cpu_count()} cores",
    }
    print(f"dataset: {rows} rows x {FEATURES} float32 = {result['dataset_mib']} MiB")
    print(f"{'run':<28} {'peak RSS MiB':>12} {'train rows':>10} {'distill/s':>10} {'status':>10}")
    for label, r in results.items():
        print(
            f"{label:<28} {r['worker_peak_rss_mib']!s:>12} {r['train_examples']!s:>10} "
            f"{r['samples_per_second'].get('distill')!s:>10} {r['status']:>10}"
        )
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(r["status"] == "succeeded" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
