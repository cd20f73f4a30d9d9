"""`distillery keys ...`, the bind rule of `distillery serve` and `distillery demo`, run as real
subprocesses (the client commands: tests/distillery/test_cli*.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import cli
from app.main import create_app
from app.settings import Settings, get_settings
from distillery.cli.report import gain_line
from tests.conftest import RecordingDispatcher

ROOT = Path(__file__).resolve().parents[2]


def distillery(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`distillery ARGS` in a child process (the same interpreter as .venv/bin/distillery)."""
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_create_list_revoke(database_url: str, tmp_path: Path) -> None:
    # A fresh database: `keys` upgrades the schema itself.
    db = {"DISTILLERY_DATABASE_URL": database_url}
    created = distillery("keys", "create", "--tenant", "acme", "--name", "laptop", **db)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("dk_") and " " not in key
    other = distillery("keys", "create", "--tenant", "globex", **db)
    assert other.returncode == 0, other.stderr

    listed = distillery("keys", "list", **db)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["id", "tenant", "name", "prefix"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("acme", "laptop", key[:8]),
        ("globex", "-", other.stdout.strip().splitlines()[-1][:8]),
    ]
    assert key not in listed.stdout
    key_id = rows[0][0]
    assert rows[0][-1] == "-"  # not revoked

    # The key works against an API on the same database, until it is revoked.
    settings = Settings(
        database_url=database_url,
        artifact_url=str(tmp_path / "artifacts"),
        work_dir=str(tmp_path / "work"),
        auth="required",
        auto_migrate=False,
    )
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        assert client.get("/v1/jobs", headers=headers).status_code == 200
        revoked = distillery("keys", "revoke", key_id, **db)
        assert revoked.returncode == 0, revoked.stderr
        assert key_id in revoked.stdout
        assert client.get("/v1/jobs", headers=headers).status_code == 401

    after = distillery("keys", "list", **db).stdout.strip().splitlines()[1:]
    acme_row = next(line for line in after if line.startswith(key_id))
    assert acme_row.split()[-1].endswith("Z")  # revoked at
    assert acme_row.split()[-3].endswith("Z")  # last used


def test_keys_refuse_bad_input(sqlite_url: str) -> None:
    db = {"DISTILLERY_DATABASE_URL": sqlite_url}
    bad = distillery("keys", "create", "--tenant", "no spaces", **db)
    assert bad.returncode == 2
    assert "invalid tenant name" in bad.stderr
    assert "dk_" not in bad.stdout
    missing = distillery("keys", "revoke", "key_missing", **db)
    assert missing.returncode == 1
    assert "no key 'key_missing'" in missing.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_serve_refuses_a_public_address_without_auth(host: str) -> None:
    # Port 1: were the rule broken, the server would fail to bind instead of serving.
    result = distillery("serve", "--host", host, "--port", "1", DISTILLERY_AUTH="off")
    assert result.returncode == 2
    assert "DISTILLERY_AUTH=required" in result.stderr
    assert "--insecure" in result.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("localhost.example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert cli.is_loopback(host) is loopback


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Record uvicorn.run instead of serving."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("auth", "args"),
    [
        ("off", ["--host", "127.0.0.1"]),
        ("off", ["--host", "0.0.0.0", "--insecure"]),
        ("required", ["--host", "0.0.0.0"]),
    ],
)
def test_serve_starts_when_the_rule_allows(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, auth: str, args: list
) -> None:
    monkeypatch.setenv("DISTILLERY_AUTH", auth)
    assert cli.main(["serve", *args]) == 0
    assert [(c["app"], c["host"]) for c in uvicorn_calls] == [("app.main:app", args[1])]


def test_serve_writes_no_access_log_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import uvicorn_options
    from app.settings import get_settings

    get_settings.cache_clear()
    assert uvicorn_options("127.0.0.1", 8000, 2)["access_log"] is False
    monkeypatch.setenv("DISTILLERY_ACCESS_LOG", "true")
    get_settings.cache_clear()
    try:
        assert uvicorn_options("127.0.0.1", 8000, 2)["access_log"] is True
    finally:
        monkeypatch.delenv("DISTILLERY_ACCESS_LOG")
        get_settings.cache_clear()


# --- `distillery demo`: the report ends with one plain line on the distillation gain ----------

TINY_SPEC = {
    "dataset": {"name": "synthetic", "options": {"shape": [8], "num_samples": 300}},
    "teacher": {"arch": "mlp", "params": {"hidden": [32]}, "train": {"epochs": 2}},
    "student": {"arch": "mlp", "params": {"hidden": [4]}},
    "distill": {"epochs": 2},
    "export": ["safetensors"],
}


def test_demo_ends_with_the_gain_over_the_baseline(tmp_path: Path, sqlite_url: str) -> None:
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY_SPEC))
    output = tmp_path / "out"
    demo = distillery(
        "demo",
        str(spec),
        "--output",
        str(output),
        DISTILLERY_DATABASE_URL=sqlite_url,
        DISTILLERY_ARTIFACT_URL=str(tmp_path / "artifacts"),
        DISTILLERY_WORK_DIR=str(tmp_path / "work"),
    )
    assert demo.returncode == 0, demo.stderr
    # The job's progress as plain lines (stdout is not a terminal), a line per stage.
    assert any("distill" in line and "epoch 2/2" in line for line in demo.stdout.splitlines())
    report = json.loads((output / "report.json").read_text())
    student = report["student"]["test_accuracy"]
    baseline = report["baseline"]["test_accuracy"]
    last = demo.stdout.strip().splitlines()[-1]
    assert last == gain_line(report)
    assert f"(student {student:.3f} vs baseline {baseline:.3f}, same student from scratch)" in last


@pytest.mark.parametrize(
    ("student", "baseline", "line"),
    [
        (0.871, 0.83, "distillation gain: +4.1 points (student 0.871 vs baseline 0.830, "),
        (0.95, 0.962, "distillation lost 1.2 points (student 0.950 vs baseline 0.962, "),
        (0.9, 0.9, "distillation made no difference (student 0.900 vs baseline 0.900, "),
    ],
)
def test_the_gain_line_says_which_way_it_went(student: float, baseline: float, line: str) -> None:
    result = {"student": {"test_accuracy": student}, "baseline": {"test_accuracy": baseline}}
    assert gain_line(result) == line + "same student from scratch)"


def test_the_gain_line_without_a_baseline() -> None:
    line = gain_line({"student": {"test_accuracy": 0.9}})
    assert line == "no distillation gain measured: the job trained no from-scratch baseline"
