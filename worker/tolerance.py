"""How much a compress step lost, in the task's test metric (its catalog entry names it and
which way is better: accuracy up, bits per byte down), against the tolerance the spec states
for the step; a step beyond it leaves a warning, and its report row says so."""

from typing import Any

from distillery.types.catalog import TASKS
from worker.job_context import JobContext


def test_metric(job: JobContext) -> tuple[str, bool]:
    """The task's test metric without its `test_` prefix, and whether higher is better."""
    metric = TASKS[job.task.name].test_metric
    assert metric is not None, "every task names its test metric"
    return metric.key.removeprefix("test_"), metric.higher_is_better


def judged(
    job: JobContext,
    step: str,
    before: dict[str, Any],
    after: dict[str, Any],
    tolerance: float | None,
) -> dict[str, Any]:
    """What the step lost (`before` and `after` are rows with `test_<metric>`), against the
    tolerance when the spec gives one; a warning event when it lost more."""
    metric, higher_is_better = test_metric(job)
    key = f"test_{metric}"
    lost = before[key] - after[key] if higher_is_better else after[key] - before[key]
    verdict: dict[str, Any] = {"metric": metric, "lost": round(lost, 4), "tolerance": tolerance}
    if tolerance is not None:
        verdict["within"] = lost <= tolerance
        if not verdict["within"]:
            job.event(
                "warning",
                f"{step}: lost {lost:.4f} {metric} ({before[key]} -> {after[key]}), more than "
                f"its tolerance of {tolerance}",
                verdict,
            )
    return verdict
