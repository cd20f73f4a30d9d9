"""`python -m worker.run <job_id>`: run one job in this process (the embedded runner's child).

`python -m worker.run --next` is the runner's spare: it imports the pipeline (and torch) ahead
of time, then waits for a job id on stdin, so a job submitted to an idle runner starts at once
instead of after a process start and seconds of imports. It exits without one at end of input.
"""

import logging
import os
import signal
import sys

from app.db import is_database_unreachable
from app.logs import bind_job, configure_logging
from app.settings import get_settings
from distillery.types.protocol import EXIT_DATABASE_UNREACHABLE, PARENT_PID_ENV
from worker.claiming import claim_job, holding

PR_SET_PDEATHSIG = 1
NEXT = "--next"


def die_with_parent() -> None:
    """When started by the embedded runner, end with the API process, even a SIGKILLed one
    (Linux: the kernel sends SIGTERM when the parent dies), so a restarted API never runs a
    second job beside an orphan. The job's lease then expires and the reaper requeues it."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        sys.exit(1)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m worker.run <job_id> | --next", file=sys.stderr)
        return 2
    die_with_parent()
    settings = get_settings()
    configure_logging(settings)
    job_id = argv[0]
    if job_id == NEXT:
        import worker.lifecycle  # noqa: F401  (while idle, before the job is known)

        job_id = sys.stdin.readline().strip()
        if not job_id:
            return 0
    bind_job(job_id)
    # Claim before importing the pipeline (and torch): a job that is not ours costs nothing.
    try:
        claimed = claim_job(job_id, settings)
    except Exception as exc:
        if not is_database_unreachable(exc):
            raise
        logging.getLogger(__name__).warning("cannot reach the database to claim %s", job_id)
        return EXIT_DATABASE_UNREACHABLE
    if claimed is not None:
        job, owner = claimed
        with holding(job, owner, settings) as control:
            # Only now the pipeline (and torch), with the lease already renewed meanwhile.
            from worker import lifecycle

            lifecycle.run_claimed(job, control, settings)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # The job's rows are committed and its files written: skip the interpreter's teardown
    # (a second or two with torch loaded), which the runner's next job would wait for.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
