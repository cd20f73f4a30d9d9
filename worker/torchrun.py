"""A training stage over several processes: `resources.processes` > 1 runs the stage's
training loop under torchrun, launched by the job's worker as a subprocess (a Celery prefork
child may not start multiprocessing children of its own, but it may run a program).

The worker (`run_ranks`) starts `python -m torch.distributed.run --standalone
--nproc-per-node N -m worker.rank <job> <stage>` and waits, renewing the job's lease as
always. Each rank (worker/rank.py) builds the job as a resumed attempt would, up to the stage,
and runs the same loop (worker/train.py), data-parallel (worker/data_parallel.py: gloo on
CPU, NCCL with a GPU per rank); rank 0 writes its checkpoints, metrics and events. Then the
worker loads the loop's last checkpoint and finishes the stage itself. A rank that dies makes
torchrun restart the group (MAX_RESTARTS times), which resumes from the last checkpoint; a
pause or cancel stops every rank at the same step, and rank 0 leaves the reason in
`<stage>.ranks` for the worker.
"""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from worker.control import JobCancelled, JobPaused, LeaseLost

if TYPE_CHECKING:
    from worker.job_context import JobContext

log = logging.getLogger(__name__)

# Set in a rank's environment: the job's lease owner (the worker that launched it), under
# whose name rank 0 writes.
RANK_OWNER_ENV = "DISTILLERY_RANK_OWNER"
# The worker's settings, as JSON: a rank runs with exactly them.
RANK_SETTINGS_ENV = "DISTILLERY_RANK_SETTINGS"
# Times torchrun restarts the group after a rank died, each time from the last checkpoint.
MAX_RESTARTS = 2
STOPPED = {"paused": JobPaused, "cancelled": JobCancelled, "lease_lost": LeaseLost}


class RankDone(BaseException):
    """A rank has run the stage's training: the rest of the stage is the worker's. (Not an
    Exception: no stage code may catch it.)"""


def in_rank() -> bool:
    return RANK_OWNER_ENV in os.environ


def processes(job: "JobContext") -> int:
    """The processes the job's training stages run in (`resources.processes`; 1 before it)."""
    return int((job.spec.get("resources") or {}).get("processes", 1))


def outcome_path(workdir: Path, stage: str) -> Path:
    """Where rank 0 says why the group stopped before the end of the stage's training."""
    return workdir / f"{stage}.ranks"


def run_ranks(job: "JobContext") -> None:
    """Run the current stage's training in torchrun ranks; returns once they wrote its last
    checkpoint. Raises JobPaused, JobCancelled or LeaseLost as the
    ranks stopped, RuntimeError when they failed."""
    outcome = outcome_path(job.workdir, job.stage)
    outcome.unlink(missing_ok=True)
    count = processes(job)
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={count}",
        f"--max-restarts={MAX_RESTARTS}",
        "-m",
        "worker.rank",
        job.job_id,
        job.stage,
    ]
    settings = job.settings
    if job.device.type == "cpu":
        # The worker's threads shared among its ranks.
        threads = max(1, (settings.torch_threads or os.cpu_count() or 1) // count)
        settings = settings.model_copy(update={"torch_threads": threads})
    env = {
        **os.environ,
        RANK_OWNER_ENV: job.control.owner,
        RANK_SETTINGS_ENV: settings.model_dump_json(),
        "OMP_NUM_THREADS": str(settings.torch_threads or os.cpu_count() or 1),
        # A fresh rendezvous store for every restart of the group. torchrun's shared store
        # (its default) keeps the previous attempt's keys: a restarted rank may read the dead
        # rank's address and fail to connect (pytorch/pytorch#135712).
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
    }
    job.event(
        "info", f"{job.stage}: training in {count} processes (torchrun)", {"processes": count}
    )
    group = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        while True:
            try:
                group.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if job.control.lease_lost.is_set():
                    raise LeaseLost(job.job_id) from None
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
            group.wait()
    if outcome.exists():
        stopped = outcome.read_text().strip()
        outcome.unlink()
        raise STOPPED[stopped](job.job_id)
    if group.returncode != 0:
        raise RuntimeError(
            f"{job.stage}: the {count} training processes failed (torchrun exit "
            f"{group.returncode}, after up to {MAX_RESTARTS} restarts; see the worker's log)"
        )
