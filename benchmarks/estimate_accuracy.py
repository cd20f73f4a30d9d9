"""Estimate vs actual for the example specs: how close POST /v1/jobs/estimate, and the
estimate each job makes of itself, come to what the job then took.

`distillery serve` on the embedded default (SQLite, its in-process runner), one job at a time
on an otherwise idle machine. For each spec: the endpoint's estimate (a dry run in a process
of its own), then the job, submitted and waited for; its `cost` holds its own estimate (made
after validate, on its device) and what it did. Prints a Markdown table, writes
benchmarks/estimate_accuracy.json.

    .venv/bin/python benchmarks/estimate_accuracy.py examples/digits.json examples/...
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.services import ROOT, embedded_service
from distillery import Client


def measure(client: Client, spec_path: Path) -> dict[str, Any]:
    spec = json.loads(spec_path.read_text())
    asked = client.jobs.estimate(spec)
    started = time.monotonic()
    job = client.jobs.create(spec)
    job = client.jobs.wait(job.id, poll_interval=0.5, timeout=3 * 3600)
    if job.status != "succeeded" or job.cost is None:
        raise SystemExit(f"{spec_path}: {job.status} {job.error}")
    own, actual = job.cost.estimate, job.cost.actual
    assert own is not None and actual is not None
    device = actual.device
    return {
        "spec": spec_path.name,
        "device": own.wall_seconds[device].device,
        "endpoint_seconds": asked.wall_seconds[device].total,
        "job_estimate_seconds": own.wall_seconds[device].total,
        "actual_seconds": actual.total,
        "submit_to_end_seconds": round(time.monotonic() - started, 1),
        "estimated_steps": own.work.teacher_steps + own.work.student_steps,
        "actual_steps": actual.teacher_steps + actual.student_steps,
        "estimated_soft_label_bytes": own.work.soft_label_bytes,
        "actual_soft_label_bytes": actual.soft_label_bytes,
        "flops": own.work.flops,
        "stages": {
            name: {"estimate": seconds, "actual": actual.stages.get(name)}
            for name, seconds in own.wall_seconds[device].stages.items()
        },
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| spec | endpoint estimate s | job's estimate s | actual s | error | steps est / actual "
        "| soft labels est / actual | FLOPs |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        error = (r["job_estimate_seconds"] - r["actual_seconds"]) / r["actual_seconds"]
        flops = f"{r['flops'] / 1e12:.2f} T" if r["flops"] is not None else "-"
        lines.append(
            f"| {r['spec']} | {r['endpoint_seconds']:.1f} | {r['job_estimate_seconds']:.1f} | "
            f"{r['actual_seconds']:.1f} | {error:+.0%} | "
            f"{r['estimated_steps']} / {r['actual_steps']} | "
            f"{r['estimated_soft_label_bytes']} / {r['actual_soft_label_bytes']} | {flops} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="estimate-bench-") as folder:
        root = Path(folder)
        env = {
            "DISTILLERY_AUTH": "off",
            "DISTILLERY_JOB_ESTIMATES": "true",
            "DISTILLERY_ESTIMATE_TIMEOUT_SECONDS": "600",
            "DISTILLERY_LOG_LEVEL": "INFO",
        }
        with embedded_service(root, env, timeout=900) as client:
            rows = []
            for path in args.specs:
                rows.append(measure(client, path))
                print(json.dumps(rows[-1]), flush=True)
    out = ROOT / "benchmarks" / "estimate_accuracy.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
