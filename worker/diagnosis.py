"""The report's diagnosis: whether distillation helped (the distilled student against the same
student trained alone, the baseline) and, where it could not, why, as findings a user acts on.
Each finding is a code, a message and its numbers; each is also a `warning` event, sent when it
is found.

The rules (README's "Diagnosis" lists them with their thresholds):

- `teacher_below_baseline`: the teacher scores worse on validation than the baseline. Checked
  as soon as both are known: the baseline stage runs before distill and ends with the check
  (`check_teacher`), so the warning comes before distillation spends its budget. Distillation
  runs anyway.
- `capacity_gap`: distillation did not help and the teacher has CAPACITY_GAP_RATIO times the
  student's parameters or more.
- `temperature_search_no_gain`: distillation did not help although the tune stage searched the
  temperature (and kd_weight) and distillation used the best candidate.
- `transfer_set_too_small`: distillation did not help and the distillation set is under the
  task's minimum (Task.distill_set_size).

The rules are functions of numbers; `check_teacher` and `diagnose` apply them to a job.
"""

from dataclasses import asdict, dataclass
from typing import Any

from distillery.types.catalog import TASKS
from distillery.types.catalog.tasks import Metric
from worker.job_context import JobContext
from worker.learning_tasks.registry import SetSize

TEACHER_BELOW_BASELINE = "teacher_below_baseline"
CAPACITY_GAP = "capacity_gap"
TEMPERATURE_SEARCH_NO_GAIN = "temperature_search_no_gain"
TRANSFER_SET_TOO_SMALL = "transfer_set_too_small"

# Teacher parameters per student parameter from which a student that gained nothing is said to
# be too far from its teacher: a heuristic. Mirzadeh et al. 2020 ("Improved Knowledge
# Distillation via Teacher Assistant", AAAI) show distillation worsening as the gap grows and a
# middle-sized teacher assistant closing it; Cho & Hariharan 2019 find larger teachers often
# teach small students worse.
CAPACITY_GAP_RATIO = 50.0

# Where check_teacher leaves its finding (or None) for the report (JobContext.built).
TEACHER_CHECK = "teacher_check"


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# --- the rules ---------------------------------------------------------------------------------


def teacher_below_baseline(
    metric: Metric, teacher: float, baseline: float, advice: str
) -> Finding | None:
    """The teacher's validation score against the baseline's, in the task's validation metric;
    a finding when the teacher's is worse."""
    worse = teacher < baseline if metric.higher_is_better else teacher > baseline
    if not worse:
        return None
    name = metric.title[:1].lower() + metric.title[1:]
    return Finding(
        TEACHER_BELOW_BASELINE,
        f"the teacher scores {metric.format.format(teacher)} {name}, worse than the "
        f"{metric.format.format(baseline)} of the same student trained alone (the baseline): "
        f"distillation from it is unlikely to help; {advice}",
        {"metric": metric.key, "teacher": round(teacher, 6), "baseline": round(baseline, 6)},
    )


def capacity_gap(teacher_params: int | None, student_params: int) -> Finding | None:
    """A finding when the teacher has CAPACITY_GAP_RATIO times the student's parameters or
    more (None where the teacher's are unknown: precomputed logits)."""
    if not teacher_params or student_params <= 0:
        return None
    ratio = teacher_params / student_params
    if ratio < CAPACITY_GAP_RATIO:
        return None
    return Finding(
        CAPACITY_GAP,
        f"the teacher has {ratio:.0f} times the student's parameters ({teacher_params:,} vs "
        f"{student_params:,}): past about {CAPACITY_GAP_RATIO:.0f} times a student often cannot "
        "follow its teacher (Mirzadeh et al. 2020); try a larger student, or distil into an "
        "intermediate teacher first (a teacher assistant) and from it into this student",
        {
            "teacher_params": teacher_params,
            "student_params": student_params,
            "ratio": round(ratio, 2),
            "threshold": CAPACITY_GAP_RATIO,
        },
    )


def temperature_search_no_gain(tuning: dict[str, Any]) -> Finding:
    """The tune stage's search (its report part, `tuning`), which did not make distillation
    pay: what it tried and what it chose."""
    candidates = tuning["candidates"]
    temperatures = sorted({c["temperature"] for c in candidates})
    weights = sorted({c["kd_weight"] for c in candidates})
    chosen = tuning["chosen"]
    return Finding(
        TEMPERATURE_SEARCH_NO_GAIN,
        f"the temperature search tried {len(candidates)} candidates (temperature "
        f"{_listed(temperatures)}, kd_weight {_listed(weights)}) and distillation with the best "
        f"of them (temperature {chosen['temperature']:g}, kd_weight {chosen['kd_weight']:g}) "
        "still did not beat the student trained alone: another temperature is unlikely to "
        "help; look at the teacher, the student's size or the data instead",
        {
            "metric": tuning["metric"],
            "temperatures": temperatures,
            "kd_weights": weights,
            "chosen": chosen,
        },
    )


def transfer_set_too_small(size: SetSize, advice: str) -> Finding | None:
    """A finding when the distillation set holds less than the task's minimum."""
    if size.amount >= size.enough:
        return None
    return Finding(
        TRANSFER_SET_TOO_SMALL,
        f"distillation had {size.amount:,.0f} {size.unit} to learn from, under the "
        f"{size.enough:,.0f} it usually needs for the teacher's soft labels to add much to the "
        f"labels themselves: {advice}",
        {"amount": round(size.amount, 2), "unit": size.unit, "threshold": size.enough},
    )


def _listed(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


# --- applied to a job ---------------------------------------------------------------------------


def validation_metric(job: JobContext) -> Metric:
    """The task's validation metric as results show it (its catalog entry's)."""
    metric = TASKS[job.task.name].validation_metric
    assert metric is not None, "every task names the validation metric its curves plot"
    return metric


def check_teacher(job: JobContext) -> None:
    """The teacher and the trained baseline on the validation split: a `warning` event when the
    teacher scores worse, kept for the report. Skipped where the teacher's validation logits
    are unknown (precomputed logits)."""
    job.built[TEACHER_CHECK] = None
    chunks = job.teacher.val_logits()
    if chunks is None or job.baseline is None:
        return
    metric = validation_metric(job)
    key = metric.key.removeprefix("val_")
    data, task = job.data, job.task
    teacher = task.measure_logits(chunks, data.y_val)[key]
    baseline = task.measure(job.baseline, data.val, data.y_val)[key]
    finding = teacher_below_baseline(metric, teacher, baseline, _teacher_advice(job))
    job.built[TEACHER_CHECK] = finding
    if finding is not None:
        _warn(job, finding)


def diagnose(job: JobContext, report: dict[str, Any]) -> dict[str, Any]:
    """The report's `diagnosis`: `helped` (kd_gain > 0; None without a baseline) and the
    findings, the teacher's check first; the findings made here are sent as warnings."""
    gain = report["compression"].get("kd_gain")
    helped = None if gain is None else gain > 0
    found: list[Finding | None] = []
    if helped is False:
        found.append(capacity_gap(report["teacher"].get("params"), report["student"]["params"]))
        if "tuning" in job.built:
            found.append(temperature_search_no_gain(job.built["tuning"]))
        size = job.task.distill_set_size(job.data)
        found.append(transfer_set_too_small(size, _data_advice(job)))
    new = [finding for finding in found if finding is not None]
    for finding in new:
        _warn(job, finding)
    checked = job.built.get(TEACHER_CHECK)
    findings = ([checked] if checked is not None else []) + new
    return {"helped": helped, "findings": [finding.as_json() for finding in findings]}


def _warn(job: JobContext, finding: Finding) -> None:
    job.event("warning", finding.message, {"code": finding.code, **finding.data})


def _teacher_advice(job: JobContext) -> str:
    teacher = job.spec["teacher"]
    if teacher.get("source", "train") == "train":
        epochs = teacher["train"]["epochs"]
        return (
            f"train the teacher longer (teacher.train.epochs, {epochs} now) or with a better "
            "lr, or pick a stronger teacher"
        )
    return "pick a stronger teacher"


def _data_advice(job: JobContext) -> str:
    """What adds data, among what the task offers (its catalog entry: transfer, augment)."""
    entry = TASKS[job.task.name]
    if not entry.transfer:
        return "train on a larger dataset"
    advice = "add unlabelled examples for the teacher to label (dataset.transfer)"
    if entry.augment:
        advice += " or augment the data (dataset.augment)"
    return advice
