"""Augmentation through the pipeline: the teacher labels the views the student then replays,
bit for bit; stored and online labels of those views train the same student."""

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from app.models import DEFAULT_TENANT, JobStatus
from app.settings import Settings
from tests.worker.test_pipeline import load, submit
from worker import lifecycle
from worker.augment import Views
from worker.batch import Batch
from worker.job_context import JobContext

SPEC: dict[str, Any] = {
    "dataset": {
        "name": "mnist1d",
        "options": {"num_samples": 200},
        "augment": {"kind": "signal", "shift": 3, "noise": 0.05},
    },
    "teacher": {"arch": "cnn1d", "params": {"channels": 8}, "train": {"epochs": 1}},
    "student": {"arch": "cnn1d", "params": {"channels": 4}},
    "distill": {"epochs": 2, "batch_size": 32},
    "baseline": False,
    "export": ["safetensors"],
}


IMAGES: dict[str, Any] = {
    **SPEC,
    "dataset": {
        "name": "synthetic",
        "options": {"shape": [3, 8, 8], "num_classes": 3, "num_samples": 200},
        "augment": {"kind": "image", "crop_padding": 2, "flip": True, "mixup": 0.4, "cutmix": 1.0},
    },
    "teacher": {"arch": "cnn2d", "params": {"channels": [8]}, "train": {"epochs": 1}},
    "student": {"arch": "cnn2d", "params": {"channels": [4]}},
}


@pytest.mark.parametrize("spec", [SPEC, IMAGES], ids=["signal", "image-mixup-cutmix"])
def test_the_student_replays_exactly_the_views_the_teacher_labelled(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any]
) -> None:
    labelled: dict[tuple[int, int, int], torch.Tensor] = {}
    replayed: list[bool] = []
    real_views = JobContext.views

    def recording(self: JobContext, x: Any, batch: Batch) -> Views:
        views = real_views(self, x, batch)
        rows = zip(batch.index.tolist(), batch.positions.tolist(), views.inputs, strict=True)
        for index, position, view in rows:
            seen = (batch.epoch, position, index)
            if self.stage == "soft_labels":
                labelled[seen] = view.clone()
            elif self.stage == "distill":
                replayed.append(torch.equal(labelled[seen], view))
        return views

    monkeypatch.setattr(JobContext, "views", recording)
    job_id = submit(sqlite_settings, spec)
    lifecycle.run(job_id, sqlite_settings)
    job, events, _, _ = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert any("augmented views written to the store" in e.message for e in events)
    distill_examples = job.result["dataset"]["train"]
    assert len(labelled) == 2 * distill_examples  # every view of both epochs
    assert len(replayed) == 2 * distill_examples and all(replayed)


def student_weights(settings: Settings, soft_labels: str, tmp: Path) -> dict[str, torch.Tensor]:
    spec = {**SPEC, "distill": {**SPEC["distill"], "soft_labels": soft_labels}}
    job_id = submit(settings, spec)
    lifecycle.run(job_id, settings)
    job, _, _, artifacts = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    (weights,) = [a for a in artifacts if a.name == "student.safetensors"]
    return load_file(str(Path(settings.artifact_url) / weights.storage_key))


def test_stored_and_online_labels_of_the_views_train_the_same_student(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    stored = student_weights(sqlite_settings, "stored", tmp_path)
    online = student_weights(sqlite_settings, "online", tmp_path)
    assert stored.keys() == online.keys()
    for name in stored:
        # The store keeps float16 logits; the online teacher's are float32.
        torch.testing.assert_close(stored[name], online[name], rtol=1e-2, atol=1e-3)


def test_augmentation_needs_a_teacher_that_can_label_views(sqlite_settings: Settings) -> None:
    from app.db import session_scope
    from app.jobs import create_job
    from distillery.types.catalog import SpecError
    from distillery.types.job_spec import JobCreate

    spec = {**SPEC, "teacher": {"source": "logits", "file_id": "file_0"}}
    with session_scope(sqlite_settings.database_url) as session, pytest.raises(SpecError) as info:
        create_job(session, JobCreate.model_validate(spec), tenant=DEFAULT_TENANT)
    assert info.value.param == "dataset.augment"


def test_an_augmentation_that_does_not_suit_the_inputs_fails_naming_the_field(
    sqlite_settings: Settings,
) -> None:
    dataset = {**SPEC["dataset"], "augment": {"kind": "image"}}
    job_id = submit(sqlite_settings, {**SPEC, "dataset": dataset})
    lifecycle.run(job_id, sqlite_settings)
    job = load(sqlite_settings, job_id)[0]
    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "invalid_spec" and job.error["param"] == "dataset.augment"
    assert "(length,)" not in job.error["message"] and "(40,)" in job.error["message"]


@pytest.mark.parametrize("augment", [True, False])
def test_auto_runs_the_teacher_online_when_the_labels_would_not_fit_the_store(
    sqlite_settings: Settings, augment: bool
) -> None:
    small = sqlite_settings.model_copy(update={"soft_label_store_bytes": 1000})
    dataset = SPEC["dataset"] if augment else {**SPEC["dataset"], "augment": None}
    job_id = submit(small, {**SPEC, "dataset": dataset})
    lifecycle.run(job_id, small)
    job, events, _, _ = load(small, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    (online,) = [e for e in events if "the teacher runs online" in e.message]
    assert "over the store's 1000" in online.message
    assert ("augmented views" in online.message) == augment
