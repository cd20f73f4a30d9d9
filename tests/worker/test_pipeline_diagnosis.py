"""The report's diagnosis on a real in-process job (SQLite): a teacher trained too little to
teach is a warning before distillation runs, and a finding in the report."""

from typing import Any

from app.models import JobStatus
from app.settings import Settings
from tests.worker.test_pipeline import load, submit
from worker import lifecycle

# One epoch at a tiny lr leaves the teacher near chance on digits, far below the same student
# trained alone for two epochs.
WEAK_TEACHER: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "teacher": {
        "arch": "mlp",
        "params": {"hidden": [32]},
        "train": {"epochs": 1, "batch_size": 32, "lr": 1e-5},
    },
    "student": {"arch": "mlp", "params": {"hidden": [16]}},
    "distill": {"epochs": 2, "batch_size": 32},
    "export": ["safetensors"],
}


def test_a_teacher_worse_than_the_baseline_is_a_warning_before_distillation(
    sqlite_settings: Settings,
) -> None:
    settings = sqlite_settings
    job_id = submit(settings, WEAK_TEACHER)
    lifecycle.run(job_id, settings)
    job, events, metrics, _ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error  # distillation runs anyway
    assert [m.epoch for m in metrics if m.stage == "distill"] == [1, 2]

    # The warning comes once the baseline is trained, before the distill stage starts (its
    # epochs come after its stage event).
    timeline = [
        e.message if e.kind == "stage" else (e.data or {}).get("code")
        for e in events
        if e.kind in ("stage", "warning")
    ]
    warned = timeline.index("teacher_below_baseline")
    assert timeline.index("baseline") < warned < timeline.index("distill")
    warning = next(e for e in events if e.kind == "warning")
    assert warning.message.startswith("the teacher scores ")
    assert "validation accuracy, worse than the " in warning.message
    assert "teacher.train.epochs" in warning.message  # what to change

    # The report says distillation did not help, and why.
    assert job.result is not None
    diagnosis = job.result["diagnosis"]
    assert diagnosis["helped"] is False
    assert job.result["compression"]["kd_gain"] <= 0
    finding = diagnosis["findings"][0]
    assert finding["code"] == "teacher_below_baseline"
    assert finding["message"] == warning.message
    assert finding["data"]["metric"] == "val_accuracy"
    assert finding["data"]["teacher"] < finding["data"]["baseline"]
