"""`python -m worker.run <job_id>`: run one job in this process (the embedded runner's child)."""

import logging
import os
import signal
import sys

from app.runner import PARENT_PID_ENV
from app.settings import get_settings
from worker.claiming import claim_job

PR_SET_PDEATHSIG = 1


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
        print("usage: python -m worker.run <job_id>", file=sys.stderr)
        return 2
    die_with_parent()
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Claim before importing the pipeline (and torch): a job that is not ours costs nothing.
    claimed = claim_job(argv[0], settings)
    if claimed is not None:
        from worker import pipeline

        pipeline.run_claimed(*claimed, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
