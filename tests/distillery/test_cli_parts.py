"""The client commands' pure parts, without a server: the parser, the formatters, the watch's
bookkeeping of stages from events, progress and metrics, and its plain and JSON views."""

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import cli as app_cli
from distillery import cli
from distillery import types as schemas
from distillery.cli import output, report, watch
from tests.app.test_dependency_rule import loaded_after_import

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="distillery")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_one_help_lists_the_server_and_client_commands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        app_cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for name in ("serve", "worker", "demo", "keys", "gc", "submit", "watch", "show", "status"):
        assert name in text
    for name in ("logs", "cancel", "list", "download", "files"):
        assert name in text


def test_the_parser() -> None:
    submit = parse("submit", "spec.json", "--wait", "--idempotency-key", "k", "--json")
    assert (submit.client, submit.spec, submit.wait, submit.json) == (
        "submit",
        "spec.json",
        True,
        True,
    )
    assert submit.idempotency_key == "k" and submit.url is None and submit.interval == 1.0
    assert parse("status", "job_1").client == parse("show", "job_1").client == "show"
    assert parse("logs", "job_1", "-f").follow is True
    download = parse("download", "job_1", "--all", "-o", "out")
    assert (download.name, download.all, str(download.output)) == (None, True, "out")
    upload = parse(
        "files", "upload", "a.csv", "--purpose", "dataset", "--option", "label_column=y",
        "--option", "max_length=64",
    )  # fmt: skip
    assert upload.client == "files upload"
    assert upload.option == [("label_column", "y"), ("max_length", "64")]
    assert parse("list", "--status", "running", "--limit", "5").limit == 5


@pytest.mark.parametrize(
    "argv",
    [
        ["files", "upload", "a.csv", "--purpose", "dataset", "--option", "no-equals"],
        ["files", "upload", "a.csv", "--purpose", "weights"],
        ["list", "--limit", "0"],
        ["list", "--status", "done"],
        ["watch", "job_1", "--interval", "0"],
        ["submit"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        app_cli.main(argv)
    assert done.value.code == 2
    assert "error" in capsys.readouterr().err


def test_a_spec_that_cannot_be_read_is_a_usage_error(
    tmp_path: Any, capsys: pytest.CaptureFixture
) -> None:
    # Nothing is sent: no server listens on port 9 (discard).
    url = ["--url", "http://127.0.0.1:9"]
    assert app_cli.main(["submit", str(tmp_path / "missing.json"), *url]) == 2
    (tmp_path / "bad.json").write_text("{nope")
    assert app_cli.main(["submit", str(tmp_path / "bad.json"), *url, "--json"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "cannot read the spec" in err[0]
    assert "is not JSON" in json.loads(err[1])["error"]["message"]


def test_an_unreachable_api_is_an_error(capsys: pytest.CaptureFixture) -> None:
    assert app_cli.main(["list", "--url", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err.startswith("distillery: error: connection_error: ")


def test_formatters() -> None:
    assert [output.duration(s) for s in (None, 0.04, 9.96, 42.4, 185, 7620)] == [
        "-", "0.0s", "10.0s", "42s", "3m05s", "2h07m",
    ]  # fmt: skip
    assert [output.size(n) for n in (512, 2048, 5 * 1024**3)] == ["512 B", "2.0 KiB", "5.0 GiB"]
    values = {"train_loss": 0.28139, "val_accuracy": 0.2361, "lr": 0.003, "val_loss": None}
    assert output.metric_text(values) == "loss 0.2814  val_acc 0.2361"
    assert output.metric_text({"val_bits_per_byte": 2.5}) == "val_bpb 2.5000"
    assert output.when(T0) == "2025-01-01 00:00:00Z"
    assert output.plain_table(("id", "status"), [("job_1", "running")]) == [
        "id     status",
        "job_1  running",
    ]


def test_the_report_survives_a_teacher_without_arch_or_params() -> None:
    result = {
        "task": "classification",
        "teacher": {"test_accuracy": 0.9},
        "student": {"arch": "mlp", "params": 10, "bytes": 100, "test_accuracy": 0.8},
        "compression": {"accuracy_retention": 0.89},
    }
    lines = report.report_lines(result)
    assert lines[0] == "report"
    assert lines[2].split() == ["teacher", "-", "-", "-", "0.9000", "-"]
    assert "accuracy retention 0.89" in lines[-1]
    assert report.gain_line(result).startswith("no distillation gain measured")


def test_the_diagnosis_says_whether_distillation_helped_and_why() -> None:
    finding = {
        "code": "teacher_below_baseline",
        "message": "the teacher scores 0.7100 validation accuracy, worse than the 0.7800 ...",
        "data": {},
    }
    result: dict[str, Any] = {"diagnosis": {"helped": False, "findings": [finding]}}
    assert report.diagnosis_lines(result) == [
        "diagnosis: distillation did not help:",
        "  - teacher_below_baseline: the teacher scores 0.7100 validation accuracy, worse than "
        "the 0.7800 ...",
    ]
    result["diagnosis"] = {"helped": True, "findings": []}
    assert report.diagnosis_lines(result) == ["diagnosis: distillation helped"]
    result["diagnosis"] = {"helped": None, "findings": []}
    assert report.diagnosis_lines(result) == [
        "diagnosis: no baseline to tell whether distillation helped"
    ]
    assert report.diagnosis_lines({}) == []  # a report from before diagnoses


def test_the_cli_imports_no_torch_database_or_web_framework() -> None:
    heavy = ("torch", "worker", "sqlalchemy", "fastapi", "starlette", "numpy")
    modules = "distillery.cli, distillery.cli.commands, distillery.cli.watch"
    assert loaded_after_import(modules, heavy) == []


# --- the watch's bookkeeping -------------------------------------------------------------------


def event(event_id: int, kind: str, message: str, seconds: float = 0) -> schemas.JobEvent:
    return schemas.JobEvent(
        id=event_id,
        created_at=T0 + timedelta(seconds=seconds),
        kind=kind,
        message=message,
        data={"stage": message} if kind == "stage" else None,
    )


def job(status: str, stage: str | None = None, **progress: Any) -> schemas.Job:
    finished = T0 + timedelta(seconds=60) if status in ("succeeded", "failed") else None
    return schemas.Job(
        id="job_1",
        name=None,
        status=status,
        stage=stage,
        progress=schemas.Progress(stage=stage, **progress),
        attempt=1,
        created_at=T0,
        started_at=T0,
        finished_at=finished,
        error=None,
        spec={},
        metadata={},
        result=None,
    )


def metric(stage: str, epoch: int, loss: float) -> schemas.MetricRow:
    values = {"train_loss": loss, "val_accuracy": 0.5 + epoch / 100, "epoch_seconds": 2.0}
    return schemas.MetricRow(stage=stage, epoch=epoch, values=values)


def test_stages_come_from_events_epochs_from_progress_and_metrics() -> None:
    clock = [100.0]
    state = watch.JobWatch("job_1", clock=lambda: clock[0])
    new = state.add_events([event(1, "status", "queued"), event(2, "stage", "validate", 1)])
    assert [e.id for e in new] == [1, 2]
    state.update_job(job("running", "validate"))
    assert state.metrics_due()
    state.add_metrics([])
    assert not state.metrics_due()

    # Two stages pass between polls: the first ended when the second began.
    new = state.add_events(
        [
            event(2, "stage", "validate"),
            event(3, "stage", "pretrain_teacher", 5),
            event(4, "stage", "distill", 9),
        ]
    )
    assert [e.id for e in new] == [3, 4]
    state.update_job(job("running", "distill", epoch=3, epochs=10, fraction=0.4))
    assert state.metrics_due()
    state.add_metrics(
        [metric("pretrain_teacher", 1, 2.0), metric("pretrain_teacher", 2, 1.0)]
        + [metric("distill", e, 1 / e) for e in (1, 2, 3)]
        + [metric("baseline", 1, 9.0)]  # its stage event comes with the next poll
    )
    validate, teacher, distill = state.stages.values()
    assert (validate.state, validate.seconds, validate.epoch_text) == ("done", 4.0, "")
    assert (teacher.state, teacher.epoch_text, teacher.seconds) == ("done", "epoch 2/2", 4.0)
    assert teacher.values["train_loss"] == 1.0
    assert (distill.state, distill.epoch_text, distill.eta_seconds) == ("running", "epoch 3/10", 14)
    assert distill.time_text == "eta 14s" and state.current is distill
    assert "baseline" not in state.stages

    # Seen to take 10 s an epoch (validation included): the ETA goes at that pace.
    clock[0] += 10
    state.update_job(job("running", "distill", epoch=4, epochs=10, fraction=0.5))
    assert distill.eta_seconds == 60

    state.update_job(job("succeeded", None, fraction=1.0))
    assert state.finished and all(s.state == "done" for s in state.stages.values())
    assert distill.seconds == 51.0 and distill.time_text == "51s"


def test_a_failed_job_marks_its_running_stage_failed() -> None:
    state = watch.JobWatch("job_1")
    state.add_events([event(1, "stage", "validate"), event(2, "stage", "distill")])
    state.update_job(job("failed"))
    assert [s.state for s in state.stages.values()] == ["done", "failed"]


class Recorder(output.Output):
    def __init__(self, json_mode: bool = False) -> None:
        super().__init__(json_mode)
        self.rich = False
        self.lines: list[Any] = []

    def line(self, text: str = "", style: str | None = None) -> None:
        self.lines.append(text)

    def json_line(self, value: Any) -> None:
        self.lines.append(json.loads(json.dumps(output.jsonable(value))))


def test_plain_lines_follow_the_order_things_happened() -> None:
    out = Recorder()
    view, state = watch.LineView(out), watch.JobWatch("job_1")
    state.add_events([event(1, "stage", "validate")])
    state.update_job(job("running", "validate"))
    view.update(state, [event(1, "stage", "validate")])
    new = state.add_events(
        [event(2, "info", "1000 train"), event(3, "stage", "distill"), event(4, "warning", "slow")]
    )
    state.update_job(job("running", "distill", epoch=1, epochs=2, fraction=0.5))
    state.add_metrics([metric("distill", 1, 0.25)])
    view.update(state, new)
    view.update(state, [])  # nothing changed: nothing printed
    assert out.lines == [
        "[  0%] validate",
        "       info: 1000 train",
        "[ 50%] validate          0.0s  done",
        "       warning: slow",
        "[ 50%] distill           epoch 1/2  loss 0.2500  val_acc 0.5100  eta 2.0s",
    ]


def test_json_lines_carry_events_stage_changes_and_the_job_last() -> None:
    out = Recorder(json_mode=True)
    view, state = watch.JsonView(out), watch.JobWatch("job_1")
    new = state.add_events([event(1, "stage", "distill"), event(2, "status", "succeeded")])
    state.update_job(job("succeeded", None, fraction=1.0))
    view.update(state, new)
    assert [line["object"] for line in out.lines] == ["job.event", "job.event", "job.stage", "job"]
    stage = out.lines[2]
    assert (stage["stage"], stage["state"], stage["job_status"]) == ("distill", "done", "succeeded")
