"""The client side of the `distillery` command, built only on the SDK (distillery.Client):

    distillery submit SPEC [--wait]     watch ID          show ID (status ID)
    distillery logs ID [--follow]       cancel ID         list [--status S] [--limit N]
    distillery download ID [NAME] [--all] [--output DIR]
    distillery files upload PATH --purpose P [--option k=v ...] | list | show ID | delete ID

Every command takes --url (default $DISTILLERY_URL, else http://127.0.0.1:8000) and --json;
the API key is $DISTILLERY_API_KEY. app.cli adds these commands to its parser (one
`distillery --help` lists the server's commands too); `python -m distillery.cli` runs them
alone. This module only builds the parser: the commands (and rich) load when one runs."""

import argparse
from pathlib import Path

STATUSES = ("queued", "running", "cancelling", "paused", "succeeded", "failed", "cancelled")
PURPOSES = ("dataset", "teacher", "logits")


def _option(value: str) -> tuple[str, str]:
    """`--option key=value`: a format option of an upload (label_column=target, ...)."""
    key, sep, text = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {value!r}")
    return key, text


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be over 0, got {value}")
    return number


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=None,
        help="the API (default: $DISTILLERY_URL, else http://127.0.0.1:8000); "
        "the key is $DISTILLERY_API_KEY",
    )
    common.add_argument(
        "--json",
        action="store_true",
        help="machine output: one JSON document (JSON lines for watch, logs --follow and "
        'submit --wait); errors as {"error": ...} on stderr',
    )
    return common


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the client commands to `distillery`'s subcommands; each sets `client` to its name
    in distillery.cli.commands.COMMANDS."""
    common = common_options()

    def command(name: str, help: str, runs: str | None = None) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help, parents=[common])
        parser.set_defaults(client=runs or name)
        return parser

    def watching(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--interval", type=_seconds, default=1.0, help="seconds between polls (default 1)"
        )

    submit = command("submit", "submit a job spec (a JSON file, - for stdin); prints its id")
    submit.add_argument("spec")
    submit.add_argument(
        "--wait", action="store_true", help="watch the job; exit 0 only if it succeeds"
    )
    submit.add_argument("--idempotency-key", default=None, help="the same key submits once")
    watching(submit)

    estimate = command(
        "estimate",
        "what a spec would cost before it runs: steps, FLOPs, seconds per device (a dry run)",
    )
    estimate.add_argument("spec")

    watch = command(
        "watch", "follow a job live (stages, epochs, loss, accuracy, ETA) to its result"
    )
    watch.add_argument("job_id")
    watching(watch)

    show = command("show", "show a job: status, stage, progress, result")
    show.add_argument("job_id")
    show.add_argument(
        "--plot",
        metavar="SVG",
        help="also write the job's size / latency / accuracy frontier to this SVG file",
    )
    command("status", "show a job (as `show`)", runs="show").add_argument("job_id")

    logs = command("logs", "a job's events: time, kind, message")
    logs.add_argument("job_id")
    logs.add_argument("--follow", "-f", action="store_true", help="stream them until the job ends")

    command("cancel", "cancel a job").add_argument("job_id")

    listing = command("list", "jobs, newest first: id, name, status, stage, progress, created")
    listing.add_argument("--status", choices=STATUSES, default=None)
    listing.add_argument("--limit", type=_positive, default=20, help="at most N jobs (20)")

    download = command("download", "download a job's artifacts, sha256-verified")
    download.add_argument("job_id")
    download.add_argument(
        "name",
        nargs="?",
        default=None,
        help="default: the student (student.onnx, else .safetensors, else .ts)",
    )
    download.add_argument("--all", action="store_true", help="every artifact of the job")
    download.add_argument("--output", "-o", type=Path, default=Path("."), help="a folder")

    files = commands.add_parser("files", help="uploaded datasets, teachers and logits")
    file_commands = files.add_subparsers(dest="files_command", required=True)

    def file_command(name: str, help: str) -> argparse.ArgumentParser:
        parser = file_commands.add_parser(name, help=help, parents=[common])
        parser.set_defaults(client=f"files {name}")
        return parser

    upload = file_command("upload", "upload a file, then wait for its check (ready or error)")
    upload.add_argument("path")
    upload.add_argument("--purpose", required=True, choices=PURPOSES)
    upload.add_argument(
        "--option",
        type=_option,
        action="append",
        metavar="KEY=VALUE",
        help="a format option (label_column=..., max_length=...); repeatable",
    )
    upload.add_argument("--no-wait", action="store_true", help="do not wait for the check")
    upload.add_argument(
        "--timeout", type=_seconds, default=None, help="seconds to wait for the check"
    )
    file_list = file_command("list", "files, newest first")
    file_list.add_argument("--purpose", choices=PURPOSES, default=None)
    file_list.add_argument("--limit", type=_positive, default=20, help="at most N files (20)")
    file_command("show", "show a file: status, what its check found").add_argument("file_id")
    file_command("delete", "delete a file (409 while a live job uses it)").add_argument("file_id")


def run(args: argparse.Namespace) -> int:
    """Run the client command the parsed `args` name (see add_commands)."""
    from distillery.cli.commands import run as run_command

    return run_command(args)


def main(argv: list[str] | None = None) -> int:
    """`python -m distillery.cli`: the client commands alone (a machine without the server)."""
    parser = argparse.ArgumentParser(prog="distillery", description=__doc__.split("\n\n")[0])
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))
