"""`python -m worker.rank <job_id> <stage>`: one torchrun rank of a training stage
(worker/torchrun.py launches the group).

It joins the process group (gloo on CPU, NCCL on its own GPU), builds the job as a resumed
attempt would (validate, then every stage before this one, each reusing what it left), then
runs the stage until its training loop has finished (RankDone). Only rank 0's events and
metrics are written, under the lease of the worker that launched the group, and only while
the stage trains: the rebuilding says nothing. A pause or cancel (agreed by every rank, at the
same step) is left for the worker in `<stage>.ranks`.
"""

import logging
import os
import sys
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from app.db import session_scope
from app.jobs.rows import unscoped_job
from app.logs import bind_job, configure_logging
from app.settings import Settings
from worker import data_parallel
from worker.control import JobCancelled, JobControl, JobPaused, LeaseLost
from worker.job_context import JobContext
from worker.precision import set_worker_threads
from worker.stages import STAGES
from worker.torchrun import RANK_OWNER_ENV, RANK_SETTINGS_ENV, RankDone, outcome_path

log = logging.getLogger(__name__)

INIT_TIMEOUT = timedelta(minutes=2)


class RankControl(JobControl):
    """A rank's link to the job: the worker that launched it holds the lease (this heartbeat
    only reads the status, for cancel and pause); rank 0 writes epochs and events under the
    worker's name while `loud`, the other ranks never."""

    loud = False
    renews_lease = False

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        if self.loud:
            super().event(kind, message, data)

    def epoch(self, stage: str, epoch: int, values: dict[str, float], progress: dict) -> None:
        if self.loud:
            super().epoch(stage, epoch, values, progress)

    def stage(self, stage: str, progress: dict[str, Any]) -> None:
        pass  # the worker set it

    def progress(self, progress: dict[str, Any]) -> None:
        pass

    def cost(self, cost: dict[str, Any]) -> None:
        pass


def run_rank(job_id: str, stage_name: str, settings: Settings) -> None:
    cuda = torch.cuda.is_available()
    # Bounded: a group that cannot form fails (and torchrun restarts it) instead of waiting
    # for the default 30 minutes.
    dist.init_process_group("nccl" if cuda else "gloo", timeout=INIT_TIMEOUT)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    set_worker_threads(settings)
    with session_scope(settings.database_url) as session:
        row = unscoped_job(session, job_id)
    control = RankControl(settings, job_id, os.environ[RANK_OWNER_ENV])
    job = JobContext.for_job(row, settings, control, device=device)
    with control:
        try:
            first, *rest = STAGES
            first.run(job)
            applying = [stage for stage in rest if stage.applies(job)]
            job.progress.plan({first.name: 0.0, **{s.name: s.work(job) for s in applying}})
            for stage in applying:
                job.enter(stage.name)
                if stage.name == stage_name:
                    control.loud = data_parallel.writes()
                    stage.run(job)
                    raise RuntimeError(f"{stage_name} trained nothing in this rank")
                stage.run(job)  # done by the worker already: reused
        except RankDone:
            pass
        except (JobPaused, JobCancelled, LeaseLost) as exc:
            if data_parallel.writes():
                why = {JobPaused: "paused", JobCancelled: "cancelled", LeaseLost: "lease_lost"}
                reason = next(v for k, v in why.items() if isinstance(exc, k))
                outcome_path(job.workdir, stage_name).write_text(reason)
    dist.destroy_process_group()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m worker.rank <job_id> <stage>", file=sys.stderr)
        return 2
    settings = Settings.model_validate_json(os.environ[RANK_SETTINGS_ENV])
    configure_logging(settings)
    bind_job(argv[0])
    run_rank(argv[0], argv[1], settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
