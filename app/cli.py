"""`distillery`: the server's commands (serve, worker, demo, keys, gc) and the client's,
built on the SDK in distillery.cli (submit, watch, show/status, logs, cancel, list, download,
files)."""

import argparse
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from distillery import cli as client_cli
from distillery.cli.report import gain_line, report_lines
from distillery.types.frontier import frontier_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="distillery",
        description=__doc__,
        epilog="client commands: --url (default $DISTILLERY_URL, else http://127.0.0.1:8000), "
        "the key in $DISTILLERY_API_KEY, --json for machine output",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (embedded runner unless BROKER_URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="with DISTILLERY_AUTH=off, listen on a non-loopback address anyway",
    )

    commands.add_parser("worker", help="run a Celery GPU worker (needs DISTILLERY_BROKER_URL)")

    demo = commands.add_parser("demo", help="start the service, run a job, download the student")
    demo.add_argument("spec", type=Path)
    demo.add_argument("--output", type=Path, default=Path("demo-output"))
    demo.add_argument("--port", type=int, default=0, help="0: pick a free port")

    client_cli.add_commands(commands)

    keys = commands.add_parser(
        "keys", help="API keys (in the database named by DISTILLERY_DATABASE_URL)"
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser(
        "create", help="create a key for a tenant; the key is printed once, on the last line"
    )
    create.add_argument("--tenant", required=True, type=_tenant, help="1-100 of [A-Za-z0-9_.-]")
    create.add_argument("--name", default=None, help="a label to tell keys apart")
    key_commands.add_parser("list", help="every key: id, tenant, name, prefix, dates")
    revoke = key_commands.add_parser("revoke", help="revoke a key (requests with it get 401)")
    revoke.add_argument("key_id")

    commands.add_parser(
        "gc",
        help="free disk on this host once: old work folders, soft labels over their cap, "
        "expired jobs (DISTILLERY_JOB_RETENTION_DAYS); prints what it freed",
    )

    args = parser.parse_args(argv)
    if getattr(args, "client", None):
        return client_cli.run(args)
    if not _server_installed():
        print(
            f"distillery {args.command}: the server's commands need its dependencies: "
            "pip install 'distillery[server]' (and 'distillery[worker]' for a worker); "
            "this install is the SDK and the client commands",
            file=sys.stderr,
        )
        return 2
    if args.command == "serve":
        return _serve(args.host, args.port, args.workers, args.insecure)
    if args.command == "keys":
        return _keys(args)
    if args.command == "gc":
        return _gc()
    if args.command == "worker":
        from app.settings import get_settings

        celery = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"]
        queue = get_settings().celery_queue
        os.execv(sys.executable, [*celery, "-Q", queue, "-c", "1", "--loglevel", "INFO"])
    if args.command == "demo":
        return _demo(args.spec, args.output, args.port)
    return 2


def _server_installed() -> bool:
    """Whether the server's dependencies are here (`pip install distillery` alone is the SDK
    and the client commands)."""
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("fastapi", "sqlalchemy", "uvicorn"))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _serve(host: str, port: int, workers: int, insecure: bool) -> int:
    from app.settings import get_settings

    if get_settings().auth == "off" and not is_loopback(host) and not insecure:
        print(
            f"distillery serve: refusing to listen on {host} with DISTILLERY_AUTH=off: anyone "
            "who can reach it could run jobs and read every result. Set DISTILLERY_AUTH=required "
            "(and create a key with `distillery keys create --tenant NAME`), or pass --insecure "
            "to listen without authentication anyway.",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from app.logs import configure_logging
    from app.metrics import shared_across_workers

    # Every process logs through app.logs (DISTILLERY_LOG_FORMAT), uvicorn's supervisor too.
    configure_logging(get_settings())
    with shared_across_workers(workers):
        uvicorn.run("app.main:app", log_config=None, **uvicorn_options(host, port, workers))
    return 0


def uvicorn_options(host: str, port: int, workers: int) -> dict[str, Any]:
    """How `serve` runs uvicorn. Access logs are off unless DISTILLERY_ACCESS_LOG is set: a
    polled service would otherwise write a log line per status poll. Request headers are
    bounded in size and time, bodies in idle time (app/http_protocol.py)."""
    from app.settings import get_settings

    return {
        "host": host,
        "port": port,
        "workers": workers,
        "access_log": get_settings().access_log,
        "http": "app.http_protocol:BoundedHttpToolsProtocol",
    }


def _tenant(value: str) -> str:
    from app.auth import check_tenant

    try:
        return check_tenant(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _when(moment: Any) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _keys(args: argparse.Namespace) -> int:
    from app import auth
    from app.db import session_scope, upgrade_database
    from app.settings import get_settings

    url = get_settings().database_url
    upgrade_database(url)
    with session_scope(url) as session:
        if args.keys_command == "create":
            row, key = auth.create_key(session, args.tenant, args.name)
            print(f"created API key {row.id} for tenant {row.tenant!r}")
            print("it is shown only this once; send it as 'Authorization: Bearer <key>':")
            print(key)
            return 0
        if args.keys_command == "list":
            rows = [
                (
                    r.id,
                    r.tenant,
                    r.name or "-",
                    r.prefix,
                    _when(r.created_at),
                    _when(r.last_used_at),
                    _when(r.revoked_at),
                )
                for r in auth.list_keys(session)
            ]
            header = ("id", "tenant", "name", "prefix", "created", "last used", "revoked")
            widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
            for line in (header, *rows):
                print("  ".join(f"{c:<{w}}" for c, w in zip(line, widths, strict=True)).rstrip())
            return 0
        try:
            row = auth.revoke_key(session, args.key_id)
        except auth.KeyNotFound:
            print(f"distillery keys revoke: no key {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked API key {row.id} of tenant {row.tenant!r} at {_when(row.revoked_at)}")
        return 0


def _gc() -> int:
    from sqlalchemy import inspect, make_url

    from app.db import get_engine
    from app.housekeeping import collect_garbage
    from app.settings import get_settings

    settings = get_settings()
    url = make_url(settings.database_url)
    # No schema: the wrong database (or none yet), where every work folder would look orphaned.
    # A SQLite file that is not there is not created by looking.
    missing_file = url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file()
    if missing_file or not inspect(get_engine(settings.database_url)).has_table("job"):
        print(
            f"distillery gc: no Distillery database at {settings.database_url}: set "
            "DISTILLERY_DATABASE_URL to the service's",
            file=sys.stderr,
        )
        return 1
    report = collect_garbage(settings)
    print(f"freed on this host ({settings.work_root}):")
    for line in report.lines():
        print(f"  {line}")
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit("the API process exited during start-up")
        time.sleep(0.2)


def _demo(spec_path: Path, output: Path, port: int) -> int:
    """Start the API, run the job through the SDK (the live view on a terminal, lines
    otherwise), download every artifact, print the report and the distillation gain."""
    from distillery import Client
    from distillery.cli import output as client_output
    from distillery.cli import watch

    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"starting Distillery on {url} (embedded default: SQLite + in-process runner)")
    argv = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
    level = os.environ.get("DISTILLERY_LOG_LEVEL", "WARNING")
    env = {**os.environ, "DISTILLERY_LOG_LEVEL": level}
    server = subprocess.Popen([*argv, "--log-level", "warning"], env=env)
    started = time.monotonic()
    try:
        _wait_ready(url, server)
        with Client(url, timeout=30) as client:
            spec = json.loads(spec_path.read_text())
            job = client.jobs.create(spec)
            print(f"submitted {job.id} ({spec_path})", flush=True)
            out = client_output.Output()
            job = watch.follow(client, job.id, watch.view_for(out))
            if job.status != "succeeded" or job.result is None:
                print(json.dumps(client_output.jsonable(job.error), indent=2))
                return 1
            artifacts = client.jobs.artifacts(job.id)
            output.mkdir(parents=True, exist_ok=True)
            for artifact in artifacts:
                client.jobs.download(job.id, artifact.name, output, sha256=artifact.sha256)
            print(f"\ndownloaded {len(artifacts)} artifacts to {output}/ (sha256 verified):")
            for artifact in artifacts:
                name, size, digest = artifact.name, artifact.bytes, artifact.sha256
                print(f"  {name:<20} {size:>9} bytes  sha256 {digest[:16]}...")
            print()
            print("\n".join(report_lines(job.result) + frontier_lines(job.result)))
            print(f"\ndemo finished in {time.monotonic() - started:.0f}s")
            print(gain_line(job.result))
            return 0
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
