"""Estimates: what a spec implies, measured by a dry run; and a job's estimate beside what it
actually did."""

from typing import Any

import pytest

from app import jobs
from app.db import session_scope
from app.models import JobStatus
from app.settings import Settings
from distillery.types import Estimate, JobCost, JobCreate
from tests.worker.test_pipeline import ASKED_FOR, TINY, load, submit
from worker import estimate as estimate_module
from worker import lifecycle
from worker.estimate import answer
from worker.stages import STAGE_NAMES

# TINY: 216 labelled + 100 transfer examples to distil on, 3 classes, 12 features.
TEACHER_STEPS = 3 * 7  # 3 epochs of ceil(216 / 32) batches
DISTILL_STEPS = 3 * 10  # 3 epochs of ceil(316 / 32) batches; the baseline takes as many
SOFT_LABEL_BYTES = 316 * 3 * 2  # float16 logits of every distillation example
# A forward pass of an MLP: two FLOPs per weight of each layer.
STUDENT_FLOPS = 2 * (12 * 4 + 4 * 3)
TEACHER_FLOPS = 2 * (12 * 64 + 64 * 64 + 64 * 3)


def resolved(spec: dict[str, Any]) -> dict[str, Any]:
    return jobs.resolve_spec(JobCreate.model_validate(spec))


def test_an_estimate_counts_the_work_a_spec_implies(sqlite_settings: Settings) -> None:
    estimate = Estimate.model_validate(answer(resolved(TINY), "default", sqlite_settings))
    work = estimate.work
    assert work.teacher_steps == TEACHER_STEPS
    assert work.student_steps == 2 * DISTILL_STEPS
    assert work.soft_label_bytes == SOFT_LABEL_BYTES
    assert estimate.models["student"].flops_per_example == STUDENT_FLOPS
    assert estimate.models["teacher"].flops_per_example == TEACHER_FLOPS
    stages = work.stages
    # Every stage the job would run (none of the optional ones).
    assert list(stages) == [s for s in STAGE_NAMES if s not in ASKED_FOR]
    # The teacher trains on 3 epochs of 216 examples, then labels the 316 once.
    assert stages["pretrain_teacher"].teacher_trained == 3 * 216
    assert stages["soft_labels"].teacher_inferred == 316
    assert stages["distill"].student_distilled == DISTILL_STEPS * 32
    assert stages["baseline"].student_trained == DISTILL_STEPS * 32
    assert stages["soft_labels"].flops == 316 * TEACHER_FLOPS
    assert work.flops == sum(s.flops or 0 for s in stages.values())
    # Wall time on this worker's device kinds (the CPU here), each stage measured or derived.
    cpu = estimate.wall_seconds["cpu"]
    assert set(estimate.wall_seconds) == {"cpu"}
    assert list(cpu.stages) == ["validate", "estimate", *list(stages)[1:]]
    assert cpu.total == pytest.approx(sum(cpu.stages.values()), abs=0.2)
    assert all(v > 0 for v in cpu.seconds_per_example.values())
    assert cpu.stages["distill"] > 0 and cpu.stages["export"] > 0
    assert cpu.device.startswith("cpu")
    assert any("216 train" in e.message for e in estimate.events)


def test_an_estimate_refuses_what_validate_refuses(sqlite_settings: Settings) -> None:
    spec = {**TINY, "teacher": {"arch": "cnn2d", "params": {}}}
    error = answer(resolved(spec), "default", sqlite_settings)["error"]
    assert error["code"] == "invalid_spec"
    assert error["param"] == "teacher.arch"


@pytest.fixture
def estimating(settings: Settings) -> Settings:
    """Settings whose jobs estimate themselves (tests/conftest.py turns that off)."""
    return settings.model_copy(update={"job_estimates": True})


def test_a_job_records_its_estimate_and_then_what_it_did(estimating: Settings) -> None:
    settings = estimating
    job_id = submit(settings, TINY)
    lifecycle.run(job_id, settings)
    job, events, _, _ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    cost = JobCost.model_validate(job.cost)
    assert cost.estimate is not None and cost.actual is not None
    estimated = cost.estimate.wall_seconds["cpu"]
    assert cost.estimate.work.student_steps == 2 * DISTILL_STEPS
    actual = cost.actual
    assert actual.device == "cpu" and actual.attempt == 1
    assert actual.steps == {
        "pretrain_teacher": TEACHER_STEPS,
        "distill": DISTILL_STEPS,
        "baseline": DISTILL_STEPS,
    }
    assert (actual.teacher_steps, actual.student_steps) == (TEACHER_STEPS, 2 * DISTILL_STEPS)
    assert actual.soft_label_bytes == cost.estimate.work.soft_label_bytes == SOFT_LABEL_BYTES
    # The same stages, timed as they ran.
    assert list(actual.stages) == list(estimated.stages)
    assert actual.total == pytest.approx(sum(actual.stages.values()), abs=0.2)
    assert any(e.kind == "info" and e.message.startswith("estimate: ") for e in events)


def test_a_resumed_job_keeps_its_first_estimate(estimating: Settings) -> None:
    settings = estimating
    job_id = submit(settings, TINY)
    first = {"estimate": None, "actual": None}
    with session_scope(settings.database_url) as session:
        row = jobs.unscoped_job(session, job_id)
        row.cost = first
        session.commit()
    lifecycle.run(job_id, settings)
    job, _, _, _ = load(settings, job_id)
    assert job.cost is not None and job.cost["estimate"] is not None  # none yet: it estimates
    kept = job.cost["estimate"]

    # Requeue the finished job as if an attempt had died after estimating: it is not measured
    # again (the estimate is what the job was promised before it ran).
    with session_scope(settings.database_url) as session:
        row = jobs.unscoped_job(session, job_id)
        row.status, row.cost = JobStatus.QUEUED, {"estimate": kept, "actual": None}
        row.lease_owner = None
        session.commit()
    lifecycle.run(job_id, settings)
    job, _, _, _ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.cost is not None and job.cost["estimate"] == kept
    assert job.cost["actual"]["attempt"] == 2


def test_a_jobs_models_do_not_depend_on_how_many_steps_its_estimate_timed(
    estimating: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The estimate times as many steps as the machine's speed allows; with dropout in the
    teacher, those steps' random draws once decided every later training, so the same spec
    gave different models on a fast and a slow machine."""
    spec = {**TINY, "teacher": {**TINY["teacher"], "params": {"hidden": [64], "dropout": 0.5}}}
    results = []
    for steps in (3, 7):  # what a slow and a fast machine have time to time
        monkeypatch.setattr(estimate_module, "MIN_TIMED_STEPS", steps)
        monkeypatch.setattr(estimate_module, "MAX_TIMED_STEPS", steps)
        job_id = submit(estimating, spec)
        lifecycle.run(job_id, estimating)
        job = load(estimating, job_id)[0]
        assert job.status == JobStatus.SUCCEEDED, job.error
        results.append({k: job.result[k]["test_loss"] for k in ("teacher", "student", "baseline")})
    assert results[0] == results[1]
