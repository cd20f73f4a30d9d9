"""A worker reads only the files of the job's own tenant."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import update

from app.db import session_scope
from app.models import Job, JobStatus
from app.settings import Settings
from distillery.types.catalog import SpecError
from tests.worker.test_file_jobs import job_spec
from tests.worker.test_pipeline import load, submit
from tests.worker.uploads import add_dataset, add_file, add_logits, clusters
from worker import lifecycle
from worker.teachers import TeacherContext, build_teacher
from worker.uploads import uploaded_file


def test_a_file_of_another_tenant_is_no_file(settings: Settings, tmp_path: Path) -> None:
    file_id = add_dataset(settings, tmp_path, *clusters(10))
    assert uploaded_file(settings, file_id, "dataset", "dataset.name", tenant="default").id
    with pytest.raises(SpecError) as info:
        uploaded_file(settings, file_id, "dataset", "dataset.name", tenant="acme")
    assert info.value.param == "dataset.name"
    assert info.value.message == f"no file {file_id!r}"


@pytest.mark.parametrize("source", ["onnx", "weights", "logits"])
def test_teacher_sources_refuse_a_file_of_another_tenant(
    sqlite_settings: Settings, tmp_path: Path, source: str
) -> None:
    settings = sqlite_settings
    if source == "logits":
        file_id = add_logits(settings, tmp_path, np.zeros((10, 3), dtype=np.float32))
    else:
        fmt = "onnx" if source == "onnx" else "safetensors"
        file_id = add_file(
            settings, tmp_path, purpose="teacher", fmt=fmt, upload=b"x", arrays={}, info={}
        )
    spec = {"source": source, "file_id": file_id, "arch": "mlp", "params": {}}
    teacher = build_teacher(
        TeacherContext(
            spec=spec,
            data=None,  # type: ignore[arg-type]  # refused before the data is looked at
            settings=settings,
            device=torch.device("cpu"),
            workdir=tmp_path,
            seed=0,
            tenant="acme",
        )
    )
    with pytest.raises(SpecError) as info:
        teacher.validate()
    assert info.value.param == "teacher.file_id"
    assert info.value.message == f"no file {file_id!r}"


def test_a_job_naming_a_file_of_another_tenant_fails_naming_the_field(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    settings = sqlite_settings
    file_id = add_dataset(settings, tmp_path, *clusters(50))
    job_id = submit(settings, job_spec(f"file:{file_id}"))
    # The job belongs to another tenant than the file (the API refuses this; the worker too).
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(tenant="acme"))
    lifecycle.run(job_id, settings)
    job = load(settings, job_id)[0]
    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "invalid_spec" and job.error["param"] == "dataset.name"
    assert f"no file {file_id!r}" in job.error["message"]
