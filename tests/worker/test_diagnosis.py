"""The diagnosis's rules (worker/diagnosis.py): each finding's trigger, threshold and the words
a user acts on; and the report's `diagnosis` they add up to, with a warning per new finding."""

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch

from distillery.types.catalog import TASKS
from worker import diagnosis
from worker.diagnosis import Finding
from worker.job_context import JobContext
from worker.learning_tasks.classification import Classification
from worker.learning_tasks.language_model import LanguageModel
from worker.learning_tasks.registry import SetSize, Task

ACCURACY = TASKS["classification"].validation_metric
BITS_PER_BYTE = TASKS["language_model"].validation_metric
assert ACCURACY is not None and BITS_PER_BYTE is not None


def test_a_teacher_below_the_baseline_says_both_scores_and_what_to_do() -> None:
    found = diagnosis.teacher_below_baseline(ACCURACY, 0.71, 0.78, "train it longer")
    assert found is not None and found.code == "teacher_below_baseline"
    assert found.message == (
        "the teacher scores 0.7100 validation accuracy, worse than the 0.7800 of the same "
        "student trained alone (the baseline): distillation from it is unlikely to help; "
        "train it longer"
    )
    assert found.data == {"metric": "val_accuracy", "teacher": 0.71, "baseline": 0.78}
    # As good as the baseline, or better: nothing to say.
    assert diagnosis.teacher_below_baseline(ACCURACY, 0.78, 0.78, "") is None
    assert diagnosis.teacher_below_baseline(ACCURACY, 0.9, 0.78, "") is None


def test_lower_is_better_for_bits_per_byte() -> None:
    # The case that asked for the diagnosis: teacher 3.16 bits per byte, baseline 2.83.
    found = diagnosis.teacher_below_baseline(BITS_PER_BYTE, 3.16, 2.83, "")
    assert found is not None
    assert found.message.startswith(
        "the teacher scores 3.1600 validation bits per byte, worse than the 2.8300 "
    )
    assert diagnosis.teacher_below_baseline(BITS_PER_BYTE, 2.5, 2.83, "") is None


def test_a_capacity_gap_from_fifty_times_the_parameters() -> None:
    found = diagnosis.capacity_gap(85_002, 1_210)
    assert found is not None and found.code == "capacity_gap"
    assert found.message.startswith(
        "the teacher has 70 times the student's parameters (85,002 vs 1,210)"
    )
    assert "larger student" in found.message and "teacher assistant" in found.message
    assert found.data["ratio"] == 70.25 and found.data["threshold"] == 50
    assert diagnosis.capacity_gap(49 * 1_000, 1_000) is None
    assert diagnosis.capacity_gap(None, 1_000) is None  # precomputed logits: unknown


def test_a_temperature_search_without_gain_says_what_it_tried() -> None:
    candidates = [
        {"temperature": t, "kd_weight": w, "ce_weight": round(1 - w, 6), "scores": [0.5]}
        for t, w in [(1.0, 0.9), (2.0, 0.9), (4.0, 0.9), (8.0, 0.9), (2.0, 0.5), (2.0, 1.0)]
    ]
    tuning = {
        "metric": "val_accuracy",
        "epochs_per_candidate": 2,
        "chosen": {"temperature": 2.0, "kd_weight": 0.9, "ce_weight": 0.1},
        "candidates": candidates,
    }
    found = diagnosis.temperature_search_no_gain(tuning)
    assert found.code == "temperature_search_no_gain"
    assert found.message.startswith(
        "the temperature search tried 6 candidates (temperature 1, 2, 4, 8, kd_weight 0.5, "
        "0.9, 1) and distillation with the best of them (temperature 2, kd_weight 0.9) still "
        "did not beat the student trained alone"
    )
    assert found.data["temperatures"] == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("size", "small"),
    [
        (SetSize(54.0, "examples per class", 100), True),
        (SetSize(100.0, "examples per class", 100), False),
    ],
)
def test_a_distillation_set_under_the_tasks_minimum_is_too_small(
    size: SetSize, small: bool
) -> None:
    found = diagnosis.transfer_set_too_small(size, "add a transfer set")
    assert (found is not None) is small
    if found is not None:
        assert found.message == (
            "distillation had 54 examples per class to learn from, under the 100 it usually "
            "needs for the teacher's soft labels to add much to the labels themselves: add a "
            "transfer set"
        )


def test_each_task_measures_its_distillation_set() -> None:
    classes = SimpleNamespace(distill=range(540), num_classes=10)
    assert Classification().distill_set_size(cast(Any, classes)) == SetSize(
        54.0, "examples per class", 100
    )
    # Byte windows: a byte per predicted position; token windows: the bytes each token stands
    # for (unlabelled positions, -1, predict nothing).
    targets = torch.ones(1_000, 128, dtype=torch.long)
    windows = SimpleNamespace(distill=range(1_000), input_shape=(128,), y_distill=targets)
    assert LanguageModel().distill_set_size(cast(Any, windows)) == SetSize(
        128_000.0, "bytes", 1_000_000
    )
    tokens = LanguageModel()
    tokens.token_bytes = torch.tensor([0, 3, 5])
    targets[:, :28] = 2
    targets[0, 0] = -1
    assert tokens.distill_set_size(cast(Any, windows)) == SetSize(
        1_000 * (100 * 3 + 28 * 5) - 5.0, "bytes", 1_000_000
    )


# --- the report's diagnosis ---------------------------------------------------------------------


@dataclass
class RecordingJob:
    """What `diagnose` reads of a job, and the events it sends."""

    task: Task
    data: Any
    spec: dict[str, Any]
    built: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.events.append((kind, message, data))


def diagnose(job: RecordingJob, kd_gain: float | None, teacher_params: int) -> dict[str, Any]:
    report = {
        "teacher": {"params": teacher_params},
        "student": {"params": 1_000},
        "compression": {"kd_gain": kd_gain},
    }
    return diagnosis.diagnose(cast(JobContext, job), report)


def small_classification_job() -> RecordingJob:
    """30 examples a class, a teacher check that found the teacher below the baseline."""
    job = RecordingJob(
        Classification(),
        SimpleNamespace(distill=range(300), num_classes=10),
        {"teacher": {"source": "train", "train": {"epochs": 1}}},
    )
    job.built[diagnosis.TEACHER_CHECK] = Finding("teacher_below_baseline", "weak", {})
    return job


def test_when_distillation_did_not_help_the_report_says_why() -> None:
    job = small_classification_job()
    found = diagnose(job, -0.02, teacher_params=60_000)
    assert found["helped"] is False
    codes = [f["code"] for f in found["findings"]]
    assert codes == ["teacher_below_baseline", "capacity_gap", "transfer_set_too_small"]
    small = found["findings"][2]
    assert small["message"].endswith(
        "add unlabelled examples for the teacher to label (dataset.transfer) or augment the "
        "data (dataset.augment)"
    )
    # The findings made at the end are warnings; the teacher's check sent its own before.
    assert [(kind, (data or {})["code"]) for kind, _, data in job.events] == [
        ("warning", "capacity_gap"),
        ("warning", "transfer_set_too_small"),
    ]


def test_a_search_that_ran_is_a_finding_when_distillation_did_not_help() -> None:
    job = small_classification_job()
    job.built["tuning"] = {
        "metric": "val_accuracy",
        "chosen": {"temperature": 4.0, "kd_weight": 0.9, "ce_weight": 0.1},
        "candidates": [{"temperature": 4.0, "kd_weight": 0.9}],
    }
    codes = [f["code"] for f in diagnose(job, 0.0, teacher_params=1_000)["findings"]]
    assert "temperature_search_no_gain" in codes  # no gain at all is no help


def test_when_distillation_helped_only_the_teachers_check_stays() -> None:
    job = small_classification_job()
    found = diagnose(job, 0.03, teacher_params=60_000)
    assert found == {
        "helped": True,
        "findings": [{"code": "teacher_below_baseline", "message": "weak", "data": {}}],
    }
    assert job.events == []


def test_without_a_baseline_whether_it_helped_is_unknown() -> None:
    job = small_classification_job()
    job.built.pop(diagnosis.TEACHER_CHECK)
    assert diagnose(job, None, teacher_params=60_000) == {"helped": None, "findings": []}
