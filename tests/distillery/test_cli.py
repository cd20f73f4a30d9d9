"""The client commands against a real API process, run as `distillery ...` subprocesses with
the URL and key in the environment: output that is not a terminal (plain lines), --json that
parses, the API's errors on stderr with exit status 1."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from distillery import Client
from tests.distillery.conftest import STAGES, TINY_JOB, Server

pytestmark = pytest.mark.xdist_group("processes")
ROOT = Path(__file__).resolve().parents[2]


def distillery(
    server: Server, *args: str, key: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DISTILLERY_URL": server.url,
        "DISTILLERY_API_KEY": server.api_key if key is None else key,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**TINY_JOB, "name": "cli-digits"}))
    return path


def test_submit_wait_then_list_show_logs_download(
    server: Server, spec: Path, tmp_path: Path
) -> None:
    waited = ok(distillery(server, "submit", str(spec), "--wait", "--interval", "0.2"))
    lines = waited.splitlines()
    job_id = lines[0]
    assert job_id.startswith("job_")
    # Plain lines: a line per stage change, the report and the gain at the end.
    stage_lines = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[1].split()[0] for line in stage_lines if "done" in line] == STAGES
    # The epochs and metrics of each stage: from a watch of the finished job (what the live
    # lines above show of them depends on when the polls fell; once, on a loaded machine, the
    # distill line lacked them).
    watched = ok(distillery(server, "watch", job_id)).splitlines()
    distill_line = next(line for line in watched if line.startswith("[") and " distill " in line)
    assert "epoch 2/2" in distill_line and "loss " in distill_line, watched
    assert "report" in lines and "val_acc " in waited
    # The gain, then the diagnosis: whether distillation helped and, if not, why.
    gain = next(i for i, line in enumerate(lines) if line.startswith("distillation "))
    assert lines[gain].startswith(("distillation gain", "distillation lost", "distillation made"))
    assert lines[gain + 1].startswith("diagnosis: distillation ")

    listed = json.loads(ok(distillery(server, "list", "--json", "--limit", "100")))
    mine = next(j for j in listed["data"] if j["id"] == job_id)
    assert (mine["name"], mine["status"]) == ("cli-digits", "succeeded")
    table = ok(distillery(server, "list", "--status", "succeeded")).splitlines()
    assert table[0].split() == ["id", "name", "status", "stage", "progress", "created"]
    assert any(row.split()[:5] == [job_id, "cli-digits", "succeeded", "-", "100%"] for row in table)

    assert json.loads(ok(distillery(server, "show", job_id, "--json")))["status"] == "succeeded"
    shown = ok(distillery(server, "status", job_id))
    assert "status:   succeeded" in shown and "test acc" in shown
    # The frontier: a row per model, timed in one runtime on a named CPU.
    frontier = shown.split("\nfrontier\n")[1].splitlines()
    assert frontier[0].split()[:3] == ["model", "params", "bytes"]
    assert [row.split()[0] for row in frontier[1:4]] == ["teacher", "student", "baseline"]
    assert frontier[4].startswith("  timed in onnxruntime ")
    with Client(server.url, server.api_key) as client:
        result = client.jobs.retrieve(job_id).result
    assert result is not None
    assert "\ndiagnosis: distillation " in shown
    for finding in result["diagnosis"]["findings"]:
        assert f"  - {finding['code']}: {finding['message']}\n" in shown
    # The estimate the job made of itself, beside what it did: seconds and steps per stage.
    costs = shown.split("estimate vs actual\n")[1].splitlines()
    assert costs[0].split() == [
        "stage",
        "estimated",
        "s",
        "actual",
        "s",
        "estimated",
        "steps",
        "actual",
        "steps",
    ]
    distilled = next(row.split() for row in costs if row.startswith("distill "))
    assert distilled[3:] == ["22", "22"]

    logged = ok(distillery(server, "logs", job_id)).splitlines()
    assert [line.split()[3] for line in logged if line.split()[2] == "stage"] == STAGES
    assert logged[-1].split()[2:] == ["status", "succeeded"]
    events = json.loads(ok(distillery(server, "logs", job_id, "--json")))["data"]
    assert [e["message"] for e in events if e["kind"] == "stage"] == STAGES

    with Client(server.url, server.api_key) as client:
        artifacts = {a.name: a.sha256 for a in client.jobs.artifacts(job_id)}
    out = tmp_path / "all"
    downloaded = ok(distillery(server, "download", job_id, "--all", "--output", str(out)))
    assert downloaded.count("verified") == len(artifacts)
    for name, digest in artifacts.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    # `show --plot` draws the frontier from the result: the very SVG the job uploaded.
    plot = tmp_path / "plot.svg"
    ok(distillery(server, "show", job_id, "--plot", str(plot)))
    assert plot.read_text() == (out / "frontier.svg").read_text()
    # Without a name: the student, in the format the job exported (safetensors here).
    one = json.loads(ok(distillery(server, "download", job_id, "-o", str(tmp_path), "--json")))
    assert [d["name"] for d in one["data"]] == ["student.safetensors"]
    assert Path(one["data"][0]["path"]).read_bytes() == (out / "student.safetensors").read_bytes()

    missing = distillery(server, "download", job_id, "student.onnx")
    assert missing.returncode == 1
    assert "has no artifact 'student.onnx' (it has: student.safetensors" in missing.stderr
    both = distillery(server, "download", job_id, "student.onnx", "--all")
    assert both.returncode == 2 and "not both" in both.stderr

    # Cancelling a finished job: the API's 409, on stderr, as text or as JSON.
    late = distillery(server, "cancel", job_id)
    assert late.returncode == 1 and late.stdout == ""
    assert late.stderr.startswith("distillery: error: 409 conflict: ")
    late_json = distillery(server, "cancel", job_id, "--json")
    assert late_json.returncode == 1
    assert json.loads(late_json.stderr)["error"]["code"] == "conflict"


def test_estimate_prints_the_work_and_seconds(server: Server, spec: Path) -> None:
    table = ok(distillery(server, "estimate", str(spec))).splitlines()
    assert table[0].split() == [
        "stage",
        "steps",
        "teacher",
        "ex",
        "student",
        "ex",
        "FLOPs",
        "cpu",
        "s",
    ]
    rows = {line.split()[0]: line.split() for line in table[1:] if line.strip()}
    assert rows["distill"][1] == "22" and rows["pretrain_teacher"][1] == "11"
    assert rows["total"][1] == str(11 + 2 * 22)
    assert any(line.startswith("measured by a ") for line in table)
    answer = json.loads(ok(distillery(server, "estimate", str(spec), "--json")))
    assert answer["object"] == "estimate" and answer["work"]["student_steps"] == 44
    refused = distillery(server, "estimate", "-", stdin=json.dumps({**TINY_JOB, "seed": "x"}))
    assert refused.returncode == 1 and "422" in refused.stderr


def test_submit_json_and_logs_follow(server: Server, spec: Path) -> None:
    """`submit` prints the id (JSON: the job); `logs --follow` streams the events live until
    the job ends, across the server's stream reconnects; `watch --json` streams JSON lines."""
    job = json.loads(ok(distillery(server, "submit", "-", "--json", stdin=spec.read_text())))
    assert (job["object"], job["name"]) == ("job", "cli-digits")
    followed = ok(distillery(server, "logs", job["id"], "--follow", "--json")).splitlines()
    events = [json.loads(line) for line in followed]
    assert [e["message"] for e in events if e["kind"] == "stage"] == STAGES
    assert events[-1]["message"] == "succeeded"

    watching = ok(distillery(server, "watch", job["id"], "--json"))
    watched = [json.loads(line) for line in watching.splitlines()]
    assert watched[-1]["object"] == "job" and watched[-1]["status"] == "succeeded"
    stages = {w["stage"]: w for w in watched if w["object"] == "job.stage"}
    assert list(stages) == STAGES and all(s["state"] == "done" for s in stages.values())
    assert (stages["distill"]["epoch"], stages["distill"]["epochs"]) == (2, 2)
    assert "val_accuracy" in stages["distill"]["metrics"]


def test_watch_a_cancelled_job(server: Server, tmp_path: Path) -> None:
    long_job: dict[str, Any] = {
        **TINY_JOB,
        "teacher": {**TINY_JOB["teacher"], "train": {"epochs": 2000}},
    }
    path = tmp_path / "long.json"
    path.write_text(json.dumps(long_job))
    with Client(server.url, server.api_key) as client:
        job = client.jobs.create(long_job)
        deadline = time.monotonic() + 60
        while client.jobs.retrieve(job.id).stage != "pretrain_teacher":
            assert time.monotonic() < deadline, "the job never reached pretrain_teacher"
            time.sleep(0.1)
    cancelled = ok(distillery(server, "cancel", job.id))
    assert cancelled.split() == [job.id, "cancelling"]
    watched = distillery(server, "watch", job.id, "--interval", "0.2")
    assert watched.returncode == 1, watched.stderr
    assert watched.stdout.splitlines()[-1] == f"job {job.id} cancelled"
    assert "cancelled" in [line.split()[-1] for line in watched.stdout.splitlines()]


def test_files_upload_list_show_delete(server: Server, tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("a,b,target\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(50)))
    uploaded = ok(
        distillery(
            server, "files", "upload", str(table), "--purpose", "dataset",
            "--option", "label_column=target",
        )
    )  # fmt: skip
    fields = dict(line.split(":", 1) for line in uploaded.splitlines() if ":" in line)
    file_id = fields["id"].strip()
    assert fields["status"].strip() == "ready"
    assert fields["  rows"].strip() == "50" and fields["  labelled"].strip() == "true"
    assert f'"file:{file_id}"' in uploaded

    listed = json.loads(ok(distillery(server, "files", "list", "--purpose", "dataset", "--json")))
    assert file_id in [f["id"] for f in listed["data"]]
    rows = ok(distillery(server, "files", "list")).splitlines()
    assert rows[0].split() == ["id", "purpose", "filename", "format", "size", "status", "created"]
    shown = json.loads(ok(distillery(server, "files", "show", file_id, "--json")))
    assert shown["options"] == {"label_column": "target"}
    assert ok(distillery(server, "files", "delete", file_id)).strip() == f"deleted {file_id}"
    gone = distillery(server, "files", "delete", file_id)
    assert gone.returncode == 1 and "404 not_found" in gone.stderr

    # A file its check refuses: status `error`, exit status 1.
    bogus = tmp_path / "teacher.onnx"
    bogus.write_bytes(b"not a model")
    refused = distillery(server, "files", "upload", str(bogus), "--purpose", "teacher", "--json")
    assert refused.returncode == 1
    body = json.loads(refused.stdout)
    assert body["status"] == "error" and body["error"]["code"]


def test_a_wrong_key_is_refused(server: Server) -> None:
    refused = distillery(server, "list", key="dk_wrong")
    assert refused.returncode == 1
    assert refused.stderr.startswith("distillery: error: 401 ")
