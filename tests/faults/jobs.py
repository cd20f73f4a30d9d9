"""The jobs the fault tests submit: the end-to-end digits job, made small or long."""

from typing import Any

from tests.e2e.jobs import DIGITS_JOB

# What a job exporting only safetensors leaves to download.
ARTIFACTS = {
    "student.safetensors",
    "manifest.json",
    "report.json",
    "metrics.csv",
    "frontier.svg",
}


def digits_job(
    *, teacher_epochs: int = 3, distill_epochs: int = 3, batch_size: int = 64
) -> dict[str, Any]:
    """The digits job, a few seconds by default. Small batches and more epochs make a job that
    is still running when a fault is injected: about 0.3 s per epoch at batch_size 8 (idle
    2-core machine), and each epoch is recorded, so a fault lands between two epochs' rows."""
    return {
        **DIGITS_JOB,
        "name": "fault-digits",
        "teacher": {
            "arch": "mlp",
            "params": {"hidden": [32]},
            "train": {"epochs": teacher_epochs, "batch_size": batch_size},
        },
        "student": {"arch": "mlp", "params": {"hidden": [8]}},
        "distill": {"epochs": distill_epochs, "batch_size": batch_size, "temperature": 3.0},
        "baseline": False,
        "export": ["safetensors"],
        "metadata": {"suite": "faults"},
    }


TINY_JOB = digits_job()
# Still training a few seconds after its first epoch (much longer on a loaded machine).
LONG_JOB = digits_job(teacher_epochs=12, batch_size=8)
