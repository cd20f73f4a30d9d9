"""A job's soft labels in shards, labelled by any worker of its queue.

When the teacher has more forwards to do than DISTILLERY_SOFT_LABEL_SHARD_ROWS, the
soft_labels stage plans shards (rows of `label_shard`, app/jobs/shards.py), sends one
`distillery.label_shards` task per shard beyond the first to its own queue, and then claims
and labels shards itself like any other worker: one worker alone still runs the job start to
end. Each shard's worker writes the shard's rows of the store entry to the job's work folder
(and, with an S3 store, to the job's work prefix), finishes the shard and records an event
naming itself; once every shard is done, the job's worker joins the parts into the store
entry, in order, and distillation starts.

A shard is leased like a job: a worker that dies holding one loses only that shard, which the
next claim takes over once the lease expires. Its rows are written whole or not at all, and a
shard's rows are the same bytes whoever labels it (the same teacher on the same rows, in the
same batches), so the entry does not depend on how the shards were spread.
"""

import contextvars
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from app.db import session_scope
from app.dispatch.celery import CeleryDispatcher
from app.jobs import shards
from app.jobs.shards import ClaimedShard
from app.settings import Settings
from worker import worksync
from worker.job_context import JobContext
from worker.softlabels import Entry, SoftLabelStore

log = logging.getLogger(__name__)


class ShardLost(Exception):
    """This worker's lease on its shard ran out and another worker took the shard over."""


@dataclass(frozen=True)
class Labelling:
    """What a job's soft labels are: the store entry `key` of `rows` teacher forwards with
    `positions` rows of `classes` logits each, and `logits(start, stop)`, the teacher's
    logits of forwards start..stop a batch at a time."""

    key: str
    rows: int
    positions: int
    classes: int
    logits: Callable[[int, int], Iterator["np.ndarray | torch.Tensor"]]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows * self.positions, self.classes)


def shard_bounds(rows: int, shard_rows: int) -> list[tuple[int, int]]:
    """Forwards [start, stop) of each shard: as few shards as hold at most `shard_rows` each,
    of equal size (to a row), so that no worker waits on a last, larger shard and none is
    left with a sliver."""
    shards = max(1, -(-rows // shard_rows))
    edges = [rows * i // shards for i in range(shards + 1)]
    return list(itertools.pairwise(edges))


def part_path(workdir: Path, key: str, shard: int) -> Path:
    """Where a shard's rows of the entry `key` are written (a work file of the job)."""
    return workdir / f"soft-labels-{key[:16]}-{shard:05d}.part"


class ShardLease:
    """Holds a claimed shard: renews its lease every lease_seconds / 3 until the block ends;
    `check()` raises ShardLost once the lease is gone."""

    def __init__(self, settings: Settings, shard: ClaimedShard, owner: str) -> None:
        self.settings = settings
        self.shard = shard
        self.owner = owner
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._renew,),
            name="shard-lease",
            daemon=True,
        )

    def __enter__(self) -> "ShardLease":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _renew(self) -> None:
        shard, settings = self.shard, self.settings
        while not self._stop.wait(settings.lease_seconds / 3):
            try:
                with session_scope(settings.database_url) as session:
                    held = shards.renew_shard(
                        session, shard.job_id, shard.shard, self.owner, settings.lease_seconds
                    )
            except Exception:
                log.exception("shard lease renewal failed; retrying")
                continue
            if not held:
                self.lost.set()
                return

    def check(self) -> None:
        if self.lost.is_set():
            raise ShardLost(f"{self.shard.job_id} shard {self.shard.shard}")


def label_shard(job: JobContext, labelling: Labelling, claimed: ClaimedShard) -> bool:
    """Label a shard this worker claimed: write its rows, copy them to a remote store, finish
    it and say so in an event. False when the lease was lost meanwhile (the rows were not
    written by this worker); a cancel, a pause or an error gives the shard back and raises."""
    control, settings = job.control, job.settings
    owner = control.owner
    store = SoftLabelStore.for_settings(settings)
    path = part_path(job.workdir, labelling.key, claimed.shard)
    started = time.monotonic()
    try:
        with ShardLease(settings, claimed, owner) as lease:

            def chunks() -> Iterator["np.ndarray | torch.Tensor"]:
                for chunk in labelling.logits(claimed.start, claimed.stop):
                    lease.check()
                    control.check()
                    yield chunk.reshape(-1, labelling.classes)

            job.workdir.mkdir(parents=True, exist_ok=True)
            first_row = claimed.start * labelling.positions
            store.write_part(path, labelling.key, labelling.classes, first_row, chunks())
            lease.check()
            worksync.push(job.store, job.job_id, path)
    except ShardLost:
        log.warning("lost shard %d of %s to another worker", claimed.shard, job.job_id)
        return False
    except BaseException:
        control.write(
            lambda session: shards.release_shard(session, job.job_id, claimed.shard, owner)
        )
        raise
    if not control.write(
        lambda session: shards.finish_shard(session, job.job_id, claimed.shard, owner)
    ):
        return False
    seconds = time.monotonic() - started
    job.event(
        "info",
        f"soft labels: shard {claimed.shard + 1} of {claimed.shards} (teacher forwards "
        f"{claimed.start}-{claimed.stop - 1}) labelled by {owner} in {seconds:.1f} s",
        {
            "shard": claimed.shard,
            "shards": claimed.shards,
            "start": claimed.start,
            "stop": claimed.stop,
            "worker": owner,
            "attempt": claimed.attempts,
            "seconds": round(seconds, 3),
        },
    )
    return True


def label_in_shards(job: JobContext, labelling: Labelling) -> tuple[Entry, bool]:
    """The job's worker: plan the shards, ask the queue for help, label shards until none is
    left to claim, wait for the ones other workers hold, then join them into the store entry.
    Returns the entry and whether it was in the store already."""
    settings, control = job.settings, job.control
    store = SoftLabelStore.for_settings(settings)
    stored = store.get(labelling.key)
    if stored is not None:
        return stored, True
    bounds = shard_bounds(labelling.rows, settings.soft_label_shard_rows)
    done = control.write(
        lambda session: shards.plan_shards(session, job.job_id, labelling.key, bounds)
    )
    job.event(
        "info",
        f"soft labels: {len(bounds)} shards of up to {settings.soft_label_shard_rows} teacher "
        f"forwards" + (f", {done} done by an earlier attempt" if done else ""),
        {"shards": len(bounds), "done": done, "shard_rows": settings.soft_label_shard_rows},
    )
    _ask_for_help(job, len(bounds) - done - 1)
    parts = [part_path(job.workdir, labelling.key, i) for i in range(len(bounds))]
    reported = -1
    while True:
        control.check()
        claimed = control.write(
            lambda session: shards.claim_shard(
                session, job.job_id, control.owner, settings.lease_seconds
            )
        )
        if claimed is not None:
            label_shard(job, labelling, claimed)
        counts = control.write(lambda session: shards.shard_counts(session, job.job_id))
        if counts.done != reported:  # not a write per second while others label
            reported = counts.done
            job.progress.part_done(counts.done, counts.total)
            control.progress(job.progress.snapshot())
        if claimed is not None:
            continue
        if counts.done == counts.total:
            worksync.pull(job.store, job.job_id, job.workdir, names=[p.name for p in parts])
            missing = [i for i, part in enumerate(parts) if not part.exists()]
            if not missing:
                break
            job.event("warning", f"soft labels: shards {missing} lost their rows; labelling again")
            control.write(partial(shards.redo_shards, job_id=job.job_id, shards=missing))
            continue
        # Others hold the rest: wait for them (a shard whose worker died is claimable once
        # its lease runs out).
        time.sleep(min(settings.control_poll_seconds, 1.0))
    entry = store.join_parts(labelling.key, labelling.shape, parts)
    for part in parts:
        part.unlink(missing_ok=True)
        if job.store.remote:
            job.store.delete_prefix(worksync.work_prefix(job.job_id) + part.name)
    return entry


def _ask_for_help(job: JobContext, tasks: int) -> None:
    """One shard task per shard beyond the one this worker starts with, on its own queue (the
    embedded runner has no queue: its one worker labels every shard)."""
    settings = job.settings
    if tasks <= 0 or not settings.broker_url:
        return
    try:
        device = (job.spec.get("resources") or {}).get("device", "any")
        CeleryDispatcher(settings).send_shard_tasks(job.job_id, device, tasks)
    except Exception:
        # Without help this worker labels every shard itself: slower, nothing lost.
        log.warning(
            "could not ask the queue for help with %s's soft labels", job.job_id, exc_info=True
        )
