"""Soft-label shards as workers see them: claimed once each, taken over when a worker's lease
runs out, finished only by their owner, kept across attempts when the plan is the same."""

from datetime import datetime

from sqlalchemy import update

from app import jobs
from app.db import session_scope
from app.jobs import shards
from app.models import DEFAULT_TENANT, Job, JobStatus, LabelShard
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB

BOUNDS = [(0, 100), (100, 200), (200, 250)]


def running_job(settings: Settings) -> str:
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )
        claimed = jobs.claim(session, job.id, "w0", lease_seconds=60, max_attempts=3)
        assert claimed is not None
        shards.plan_shards(session, job.id, "entry", BOUNDS)
        return job.id


def test_each_shard_is_claimed_by_one_worker_and_finished_by_its_owner(
    settings: Settings,
) -> None:
    job_id = running_job(settings)
    with session_scope(settings.database_url) as session:
        taken = [shards.claim_shard(session, job_id, f"w{i}", 60) for i in (1, 2, 3, 4)]
        first, second, third, none = taken
        assert none is None
        assert first is not None and second is not None and third is not None
        assert [(s.shard, s.start, s.stop, s.shards) for s in (first, second, third)] == [
            (0, 0, 100, 3),
            (1, 100, 200, 3),
            (2, 200, 250, 3),
        ]
        assert not shards.finish_shard(session, job_id, 0, "w2")  # not its shard
        assert shards.finish_shard(session, job_id, 0, "w1")
        assert not shards.finish_shard(session, job_id, 0, "w1")  # done once
        shards.release_shard(session, job_id, 1, "w2")  # w2 stopped: shard 1 is free at once
        again = shards.claim_shard(session, job_id, "w5", 60)
        assert again is not None and again.shard == 1 and again.attempts == 2
        counts = shards.shard_counts(session, job_id)
        assert (counts.total, counts.done, counts.running, counts.pending) == (3, 1, 2, 0)


def test_a_shard_whose_worker_stopped_renewing_is_taken_over(settings: Settings) -> None:
    job_id = running_job(settings)
    with session_scope(settings.database_url) as session:
        lost = shards.claim_shard(session, job_id, "dead", 60)
        assert lost is not None and lost.shard == 0
        assert shards.renew_shard(session, job_id, 0, "dead", 60)
        # Its lease runs out (the worker was SIGKILLed: nothing renews it).
        session.execute(
            update(LabelShard)
            .where(LabelShard.job_id == job_id, LabelShard.shard == 0)
            .values(lease_expires_at=datetime(2000, 1, 1))
        )
        session.commit()
        taken = shards.claim_shard(session, job_id, "alive", 60)
        assert taken is not None and taken.shard == 0 and taken.attempts == 2
        # The dead worker, had it come back, can neither renew nor finish it.
        assert not shards.renew_shard(session, job_id, 0, "dead", 60)
        assert not shards.finish_shard(session, job_id, 0, "dead")
        assert shards.finish_shard(session, job_id, 0, "alive")


def test_no_shard_is_claimed_once_the_job_is_not_running(settings: Settings) -> None:
    job_id = running_job(settings)
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.CANCELLING))
        session.commit()
        assert shards.claim_shard(session, job_id, "w1", 60) is None
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.FAILED))
        session.commit()
        assert not shards.add_shard_event(session, job_id, "info", "too late", None)


def test_a_resumed_job_keeps_the_shards_done_under_the_same_plan(settings: Settings) -> None:
    job_id = running_job(settings)
    with session_scope(settings.database_url) as session:
        first = shards.claim_shard(session, job_id, "w1", 60)
        assert first is not None
        assert shards.finish_shard(session, job_id, first.shard, "w1")
        assert shards.plan_shards(session, job_id, "entry", BOUNDS) == 1
        # Another entry (or other bounds): planned afresh.
        assert shards.plan_shards(session, job_id, "other", BOUNDS) == 0
        assert shards.shard_counts(session, job_id).done == 0
        # Done shards whose rows went missing are labelled again.
        done = shards.claim_shard(session, job_id, "w1", 60)
        assert done is not None and shards.finish_shard(session, job_id, done.shard, "w1")
        shards.redo_shards(session, job_id, [done.shard])
        again = shards.claim_shard(session, job_id, "w2", 60)
        assert again is not None and again.shard == done.shard
