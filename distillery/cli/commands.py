"""The client commands, each a function of (client, args, out) returning the exit status, built
only on the SDK: submit, estimate, watch, show (status), logs, cancel, list, download and
files."""

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from distillery import types
from distillery.cli import costs, report, watch
from distillery.cli.output import Output, duration, percent, size, when
from distillery.client import Client
from distillery.errors import DistilleryError, NotFound
from distillery.types.frontier import frontier_lines, frontier_svg

OK, FAILED, USAGE, INTERRUPTED, BROKEN_PIPE = 0, 1, 2, 130, 141
# What `download ID` fetches without a name: the exported student, in the first format the
# job exported.
STUDENT_FILES = ("student.onnx", "student.safetensors", "student.ts")


class UsageError(Exception):
    """Arguments the parser let through but that cannot work (exit status 2)."""


Command = Callable[[Client, argparse.Namespace, Output], int]


def run(args: argparse.Namespace) -> int:
    """Run the client command `args.client`: the API's errors go to stderr (status 1), wrong
    arguments too (status 2); Ctrl-C stops the command (130), not the job."""
    out = Output(json_mode=args.json)
    try:
        with Client(args.url) as client:
            return COMMANDS[args.client](client, args, out)
    except DistilleryError as error:
        out.error(error)
        return FAILED
    except UsageError as error:
        out.error(str(error))
        return USAGE
    except TimeoutError as error:
        out.error(str(error))
        return FAILED
    except KeyboardInterrupt:
        print("\ninterrupted (the job, if any, goes on)", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `distillery logs ID | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


# --- jobs ---------------------------------------------------------------------------------------


def read_spec(path: str) -> Any:
    """A job spec from a JSON file, or from stdin for `-`."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        raise UsageError(f"cannot read the spec {path}: {error.strerror or error}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise UsageError(f"the spec {path} is not JSON: {error}") from None


def submit(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.jobs.create(read_spec(args.spec), idempotency_key=args.idempotency_key)
    if out.json:
        (out.json_line if args.wait else out.document)(job)
    elif out.rich:
        out.line(f"submitted {job.id}" + (f" ({job.name})" if job.name else ""), style="bold")
    else:
        print(job.id, flush=True)
    if not args.wait:
        return OK
    return _watch(client, job.id, args, out)


def estimate(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = client.jobs.estimate(read_spec(args.spec))
    if out.json:
        out.document(answer)
        return OK
    out.table(*costs.estimate_table(answer))
    out.line()
    for text in costs.estimate_lines(answer):
        out.line(text)
    return OK


def watch_job(client: Client, args: argparse.Namespace, out: Output) -> int:
    return _watch(client, args.job_id, args, out)


def _watch(client: Client, job_id: str, args: argparse.Namespace, out: Output) -> int:
    """The live view until the job ends, then its result: 0 only if it succeeded."""
    job = watch.follow(client, job_id, watch.view_for(out), interval=args.interval)
    if not out.json:
        print_outcome(job, out)
    return OK if job.status == "succeeded" else FAILED


def print_outcome(job: types.Job, out: Output) -> None:
    """How a finished job ended: its report and distillation gain, or its error (stderr)."""
    if job.status == "succeeded" and job.result:
        out.line()
        for text in report.report_lines(job.result) + frontier_lines(job.result):
            out.line(text)
        out.line(report.gain_line(job.result), style="bold")
        for text in report.diagnosis_lines(job.result):
            out.line(text)
    elif job.status == "failed" and job.error is not None:
        where = f" in stage {job.error.stage}" if job.error.stage else ""
        param = f" (param: {job.error.param})" if job.error.param else ""
        print(
            f"job {job.id} failed{where}: {job.error.code}: {job.error.message}{param}",
            file=sys.stderr,
            flush=True,
        )
    else:
        out.line(f"job {job.id} {job.status}")


def show(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.jobs.retrieve(args.job_id)
    if getattr(args, "plot", None):
        # The frontier drawn from the result, as the job's frontier.svg artifact draws it.
        drawing = frontier_svg(job.result or {})
        if drawing is None:
            print(f"job {job.id} has no frontier (yet) to plot", file=sys.stderr, flush=True)
            return FAILED
        Path(args.plot).write_text(drawing)
    if out.json:
        out.document(job)
        return OK
    progress = job.progress
    where = progress.stage or "-"
    if progress.epochs:
        where += f" (epoch {progress.epoch or 0}/{progress.epochs})"
    eta = f", eta {duration(progress.eta_seconds)}" if progress.eta_seconds else ""
    pairs: list[tuple[str, Any]] = [
        ("id", job.id),
        ("name", job.name or "-"),
        ("status", job.status + (f" (attempt {job.attempt})" if job.attempt > 1 else "")),
        ("stage", where),
        ("progress", f"{percent(progress.fraction)}{eta}"),
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
    ]
    if job.metadata:
        pairs.append(("metadata", json.dumps(job.metadata)))
    if job.error is not None:
        pairs.append(("error", f"{job.error.code}: {job.error.message}"))
    out.fields(pairs)
    if job.result:
        out.line()
        for text in report.report_lines(job.result) + frontier_lines(job.result):
            out.line(text)
        out.line(report.gain_line(job.result))
        for text in report.diagnosis_lines(job.result):
            out.line(text)
    table = costs.cost_table(job.cost) if job.cost else None
    if table is not None:
        out.line()
        out.line("estimate vs actual")
        out.table(*table)
    return OK


def logs(client: Client, args: argparse.Namespace, out: Output) -> int:
    events = client.jobs.events(args.job_id, follow=args.follow)
    if out.json and not args.follow:
        out.document({"object": "list", "data": list(events)})
        return OK
    for event in events:
        if out.json:
            out.json_line(event)
            continue
        data = ""
        # A status event's "job" (the job at that change, what its webhook delivers) only
        # repeats the line's message and the stage lines.
        shown = {k: v for k, v in (event.data or {}).items() if k != "job"}
        if shown and event.kind not in ("stage", "info"):
            data = "  " + json.dumps(shown, separators=(",", ":"))
        style = "red" if event.kind in ("error", "warning") or event.message == "failed" else None
        out.line(f"{when(event.created_at)}  {event.kind:<7} {event.message}{data}", style=style)
    return OK


def cancel(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.jobs.cancel(args.job_id)
    if out.json:
        out.document(job)
    else:
        out.line(f"{job.id} {job.status}")
    return OK


def list_jobs(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = min(args.limit, 100)
    jobs = list(islice(client.jobs.list(status=args.status, limit=page), args.limit))
    if out.json:
        out.document({"object": "list", "data": jobs})
        return OK
    rows = [
        (
            j.id,
            j.name or "-",
            j.status,
            _stage(j.progress),
            percent(j.progress.fraction),
            when(j.created_at),
        )
        for j in jobs
    ]
    out.table(("id", "name", "status", "stage", "progress", "created"), rows)
    return OK


def _stage(progress: types.Progress) -> str:
    if progress.stage is None:
        return "-"
    if progress.epochs:
        return f"{progress.stage} {progress.epoch or 0}/{progress.epochs}"
    return progress.stage


def download(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.all and args.name:
        raise UsageError("name an artifact or give --all, not both")
    artifacts = client.jobs.artifacts(args.job_id)
    if args.all:
        chosen = artifacts
    else:
        names = [a.name for a in artifacts]
        student = next((n for n in STUDENT_FILES if n in names), STUDENT_FILES[0])
        name = args.name or student
        chosen = [a for a in artifacts if a.name == name]
        if not chosen:
            listed = ", ".join(names) or "none yet"
            raise NotFound(
                f"job {args.job_id} has no artifact {name!r} (it has: {listed}; --all takes all)",
                status=404,
                code="not_found",
                param="name",
            )
    args.output.mkdir(parents=True, exist_ok=True)
    done = []
    width = max((len(str(args.output / a.name)) for a in chosen), default=0)
    for artifact in chosen:
        path = client.jobs.download(args.job_id, artifact.name, args.output, sha256=artifact.sha256)
        done.append({"name": artifact.name, "path": str(path), "bytes": artifact.bytes})
        done[-1]["sha256"] = artifact.sha256
        if not out.json:
            digest = f"sha256 {artifact.sha256[:16]}… verified"
            out.line(f"{path!s:<{width}}  {size(artifact.bytes):>9}  {digest}")
    if out.json:
        out.document({"object": "list", "data": done})
    return OK


# --- files --------------------------------------------------------------------------------------


@contextmanager
def upload_progress(out: Output, name: str) -> Iterator[Callable[[int, int], None] | None]:
    """An upload's progress bar on a terminal (else no progress callback)."""
    if not out.rich:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=out.console, transient=True) as bar:
        task = bar.add_task(f"uploading {name}", total=None)

        def advance(sent: int, total: int) -> None:
            bar.update(task, completed=sent, total=total)

        yield advance


def upload_file(client: Client, args: argparse.Namespace, out: Output) -> int:
    path = Path(args.path)
    if not path.is_file():
        raise UsageError(f"no file {path}")
    options = dict(args.option or [])
    with upload_progress(out, path.name) as progress:
        file = client.files.upload(path, args.purpose, progress=progress, **options)
    if not args.no_wait and out.rich:
        with out.console.status(f"checking {file.id} ({file.format})"):
            file = client.files.wait(file.id, timeout=args.timeout)
    elif not args.no_wait:
        file = client.files.wait(file.id, timeout=args.timeout)
    if out.json:
        out.document(file)
    else:
        _show_file(file, out)
    return FAILED if file.status == "error" else OK


def _show_file(file: types.File, out: Output) -> None:
    pairs: list[tuple[str, Any]] = [
        ("id", file.id),
        ("status", file.status),
        ("purpose", file.purpose),
        ("filename", file.filename),
        ("format", file.format),
        ("bytes", f"{file.bytes} ({size(file.bytes)})"),
        ("sha256", file.sha256),
        ("created", when(file.created_at)),
    ]
    if file.options:
        pairs.append(("options", json.dumps(file.options)))
    if file.error is not None:
        pairs.append(("error", f"{file.error.code}: {file.error.message}"))
    out.fields(pairs)
    if file.info:  # what the check found: rows, shapes, classes, an ONNX signature
        out.line("info:")
        for key, value in file.info.items():
            out.line(f"  {key}: {value if isinstance(value, str) else json.dumps(value)}")
    if file.status == "ready" and file.purpose == "dataset":
        out.line(f'use it in a job as "dataset": {{"name": "file:{file.id}"}}')


def show_file(client: Client, args: argparse.Namespace, out: Output) -> int:
    file = client.files.retrieve(args.file_id)
    if out.json:
        out.document(file)
    else:
        _show_file(file, out)
    return OK


def list_files(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = min(args.limit, 100)
    files = list(islice(client.files.list(purpose=args.purpose, limit=page), args.limit))
    if out.json:
        out.document({"object": "list", "data": files})
        return OK
    rows = [
        (f.id, f.purpose, f.filename, f.format, size(f.bytes), f.status, when(f.created_at))
        for f in files
    ]
    out.table(("id", "purpose", "filename", "format", "size", "status", "created"), rows)
    return OK


def delete_file(client: Client, args: argparse.Namespace, out: Output) -> int:
    deleted = client.files.delete(args.file_id)
    if out.json:
        out.document(deleted)
    else:
        out.line(f"deleted {deleted.id}")
    return OK


COMMANDS: dict[str, Command] = {
    "submit": submit,
    "estimate": estimate,
    "watch": watch_job,
    "show": show,
    "logs": logs,
    "cancel": cancel,
    "list": list_jobs,
    "download": download,
    "files upload": upload_file,
    "files show": show_file,
    "files list": list_files,
    "files delete": delete_file,
}
