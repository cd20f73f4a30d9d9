"""Upload throughput and the API's peak memory for a large upload, over real HTTP.

Starts the embedded service (uvicorn, SQLite, local store) in a temporary folder, streams a
file of --gib GiB to POST /v1/files with curl, and reads the API process's peak RSS (VmHWM)
before and after. The upload must never sit whole in the API's memory.

    .venv/bin/python benchmarks/upload_memory.py --gib 1
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


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def write_logits(path: Path, gib: float) -> int:
    """A float32 .npy of about `gib` GiB (a logits upload), written in chunks."""
    columns = 1024
    rows = int(gib * 1024**3) // (columns * 4)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, columns))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 8192):
        stop = min(start + 8192, rows)
        array[start:stop] = rng.standard_normal((stop - start, columns), dtype=np.float32)
    array.flush()
    del array
    return path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "upload_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp_name:
        tmp = Path(tmp_name)
        upload = tmp / "logits.npy"
        size = write_logits(upload, args.gib)
        env = {
            **os.environ,
            "DISTILLERY_DATABASE_URL": f"sqlite:///{tmp / 'distillery.db'}",
            "DISTILLERY_ARTIFACT_URL": str(tmp / "store"),
            "DISTILLERY_WORK_DIR": str(tmp / "work"),
            "DISTILLERY_MAX_UPLOAD_BYTES": str(size + 1024**2),
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
            before = peak_rss_mib(api.pid)
            started = time.perf_counter()
            out = subprocess.run(
                ["curl", "-sS", "-F", f"file=@{upload}", "-F", "purpose=logits", f"{url}/v1/files"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            seconds = time.perf_counter() - started
            file = json.loads(out)
            after = peak_rss_mib(api.pid)
            deadline = time.monotonic() + 600
            while file["status"] == "processing" and time.monotonic() < deadline:
                time.sleep(0.5)
                file = httpx.get(f"{url}/v1/files/{file['id']}").json()
            checked = time.perf_counter() - started
            after_check = peak_rss_mib(api.pid)
        finally:
            api.terminate()
            api.wait(timeout=30)
    result = {
        "upload_bytes": size,
        "upload_seconds": round(seconds, 2),
        "throughput_mb_per_s": round(size / 1e6 / seconds, 1),
        "api_peak_rss_mib_before": round(before, 1),
        "api_peak_rss_mib_after_upload": round(after, 1),
        "api_peak_rss_mib_after_check": round(after_check, 1),
        "status": file["status"],
        "seconds_until_checked": round(checked, 2),
        "machine": f"{os.cpu_count()} cores",
    }
    print(f"{'upload':<28} {size / 1024**3:.2f} GiB in {seconds:.1f} s")
    print(f"{'throughput':<28} {result['throughput_mb_per_s']} MB/s")
    print(f"{'API peak RSS before':<28} {before:.0f} MiB")
    print(f"{'API peak RSS after upload':<28} {after:.0f} MiB")
    print(f"{'API peak RSS after check':<28} {after_check:.0f} MiB (file {file['status']})")
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
