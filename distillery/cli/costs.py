"""An estimate, and a job's estimate beside what it did, as tables: pure functions of the
API's Estimate and JobCost, shared by `estimate` and `show`."""

from typing import Any

from distillery import types
from distillery.cli.output import duration, size


def flops(count: int | None) -> str:
    """FLOPs in G / T / P ("-": not counted, an ONNX or logits teacher)."""
    if count is None:
        return "-"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return str(count)


def estimate_table(estimate: types.Estimate) -> tuple[list[str], list[list[Any]]]:
    """A row per stage: its steps, examples through each model, FLOPs, and seconds on each
    device kind the worker measured."""
    kinds = list(estimate.wall_seconds)
    headers = ["stage", "steps", "teacher ex", "student ex", "FLOPs", *(f"{k} s" for k in kinds)]
    rows = []
    stages = dict.fromkeys([*estimate.wall_seconds[kinds[0]].stages, *estimate.work.stages])
    for name in stages:
        stage = estimate.work.stages.get(name)
        seconds = [estimate.wall_seconds[k].stages.get(name) for k in kinds]
        rows.append(
            [
                name,
                stage.steps if stage and stage.steps else "-",
                _examples(stage.teacher_trained + stage.teacher_inferred) if stage else "-",
                _examples(stage.student_trained + stage.student_distilled + stage.student_inferred)
                if stage
                else "-",
                flops(stage.flops) if stage else "-",
                *(f"{s:.1f}" if s is not None else "-" for s in seconds),
            ]
        )
    total = estimate.work
    rows.append(
        [
            "total",
            total.teacher_steps + total.student_steps,
            _examples(total.teacher_passes),
            "",
            flops(total.flops),
            *(f"{estimate.wall_seconds[k].total:.1f}" for k in kinds),
        ]
    )
    return headers, rows


def estimate_lines(estimate: types.Estimate) -> list[str]:
    """What the table does not say: the soft labels, the devices measured, the dry run."""
    work = estimate.work
    lines: list[str] = [
        f"soft labels stored: {size(work.soft_label_bytes)}; "
        f"{work.teacher_steps} teacher steps, {work.student_steps} student steps",
    ]
    for kind, device in estimate.wall_seconds.items():
        lines.append(f"{kind}: {device.device}, about {duration(device.total)}")
    lines.append(f"measured by a {estimate.dry_run_seconds:.1f} s dry run on a worker")
    return lines


def cost_table(cost: types.JobCost) -> tuple[list[str], list[list[Any]]] | None:
    """The job's estimate for its device beside what it did: seconds and steps per stage."""
    actual, estimate = cost.actual, cost.estimate
    if estimate is None:
        return None
    kind = actual.device if actual else next(iter(estimate.wall_seconds))
    device = estimate.wall_seconds.get(kind)
    if device is None:
        return None
    headers = ["stage", "estimated s", "actual s", "estimated steps", "actual steps"]
    rows: list[list[Any]] = []
    for name, seconds in device.stages.items():
        work = estimate.work.stages.get(name)
        rows.append(
            [
                name,
                f"{seconds:.1f}",
                f"{actual.stages[name]:.1f}" if actual and name in actual.stages else "-",
                work.steps if work and work.steps else "-",
                actual.steps.get(name, "-") if actual and work and work.steps else "-",
            ]
        )
    rows.append(
        [
            "total",
            f"{device.total:.1f}",
            f"{actual.total:.1f}" if actual else "-",
            estimate.work.teacher_steps + estimate.work.student_steps,
            actual.teacher_steps + actual.student_steps if actual else "-",
        ]
    )
    return headers, rows


def _examples(count: float) -> str:
    return f"{count:,.0f}" if count else "-"
