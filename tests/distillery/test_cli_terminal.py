"""The live view, on a pseudo-terminal (pexpect): `submit --wait` and `watch` draw a row per
stage with its bar, epochs, loss and accuracy, redrawn in place (rich), then the report."""

import json
import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from distillery import Client
from tests.distillery.conftest import STAGES, TINY_JOB, Server

pytestmark = pytest.mark.xdist_group("processes")
ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A job with enough distillation epochs to be seen running.
JOB = {**TINY_JOB, "name": "cli-terminal", "distill": {"epochs": 12}}


def on_terminal(server: Server, *args: str) -> tuple[int, str, str]:
    """Run `distillery ARGS` on a 50x200 pseudo-terminal to its end: its exit status, what it
    wrote, and that with the terminal's escape sequences taken out."""
    env = {
        **os.environ,
        "DISTILLERY_URL": server.url,
        "DISTILLERY_API_KEY": server.api_key,
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "app.cli", *args],
        cwd=str(ROOT),
        env=env,
        dimensions=(50, 200),
        encoding="utf-8",
        timeout=180,
    )
    child.expect(pexpect.EOF)
    child.close()
    raw = child.before or ""
    return child.exitstatus or 0, raw, ANSI.sub("", raw)


def assert_live_view(raw: str, text: str) -> None:
    assert "\x1b[?25l" in raw  # rich's live display hides the cursor while it redraws
    assert "\x1b[2K" in raw or "\x1b[1A" in raw  # and redraws its rows in place
    for stage in STAGES:
        assert re.search(rf"✓ {stage}\s+━", text), stage  # done, with its bar
    assert re.search(r"✓ distill\s+━+ epoch 12/12 loss \d\.\d{4}  val_acc \d\.\d{4}", text)
    assert re.search(r"✓ pretrain_teacher\s+━+ epoch 1/1 ", text)
    assert re.search(r"✓ job\s+━+ 100%\s+succeeded", text)
    assert "[100%]" not in text  # not the plain lines
    assert "report" in text and "test acc" in text
    assert re.search(r"distillation (gain|lost|made)", text)


def test_submit_wait_draws_the_live_view(server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(JOB))
    status, raw, text = on_terminal(server, "submit", str(spec), "--wait", "--interval", "0.2")
    assert status == 0, text
    assert re.search(r"submitted job_\w+ \(cli-terminal\)", text)
    assert_live_view(raw, text)
    # Drawn while the job ran: the job's row running, a stage's row still spinning.
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] job\s+━*\s+\d+%\s+running", text)
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (validate|pretrain_teacher)\s+━", text)


def test_watch_draws_a_running_job_to_its_end(server: Server) -> None:
    with Client(server.url, server.api_key) as client:
        job = client.jobs.create(JOB)
    status, raw, text = on_terminal(server, "watch", job.id, "--interval", "0.2")
    assert status == 0, text
    assert_live_view(raw, text)


def test_files_upload_shows_its_progress_then_the_check(server: Server, tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("a,b,target\n" + "".join(f"{i % 5},{i % 3},{i % 2}\n" for i in range(40)))
    args = (
        "files",
        "upload",
        str(table),
        "--purpose",
        "dataset",
        "--option",
        "label_column=target",
    )
    status, _, text = on_terminal(server, *args)
    assert status == 0, text
    assert "uploading table.csv" in text
    assert re.search(r"status:\s+ready", text) and "  rows: 40" in text
