"""The simulated worker mode (load tests of the control plane): a job goes through the real
protocol, stage by stage, epoch by epoch, to an artifact and a final status, without torch
training anything."""

from pathlib import Path

from app.models import JobStatus
from app.settings import Settings
from tests.conftest import MINIMAL_JOB
from tests.worker.test_pipeline import load, submit
from worker import lifecycle
from worker.simulated import EPOCHS, STAGES


def test_a_simulated_job_reports_like_a_real_one(settings: Settings) -> None:
    simulated = settings.model_copy(
        update={"simulated_training": True, "simulated_epoch_seconds": 0.0}
    )
    job_id = submit(simulated, MINIMAL_JOB)
    lifecycle.run(job_id, simulated)
    job, events, metrics, artifacts = load(simulated, job_id)

    assert job.status == JobStatus.SUCCEEDED and job.result["simulated"] is True
    assert job.progress["fraction"] == 1.0
    assert [e.message for e in events if e.kind == "stage"] == list(STAGES)
    assert [(m.stage, m.epoch) for m in metrics] == [
        (stage, epoch) for stage, n in EPOCHS.items() for epoch in range(1, n + 1)
    ]
    (artifact,) = artifacts
    stored = Path(simulated.artifact_url) / artifact.storage_key
    assert stored.stat().st_size == artifact.bytes
