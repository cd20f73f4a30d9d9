"""A short KD recovery of a compressed copy of the student (the prune stage's pruned student,
the quantize stage's fake-quantised one): plain `kd` at the distillation's (resolved)
temperature and weights, the temperature held constant, from the teacher's stored soft labels
(the teacher does not run again; a job whose teacher runs online runs it here too), checkpointed
under its own name so that a resumed job picks it up where it stopped, or reuses it whole."""

from typing import Any

from torch import nn

from worker.job_context import JobContext
from worker.kd.schedules import TemperatureSchedule
from worker.stages.distill import method_loss, method_run


def recovery_settings(job: JobContext, epochs: int, lr: float | None) -> dict[str, Any]:
    """The distillation's settings as recovery trains with them: `epochs`, at `lr` (default:
    a tenth of the distillation's)."""
    distill = job.distill_settings
    return {
        **distill,
        "method": "kd",
        "method_params": {},
        "epochs": epochs,
        "lr": lr or distill["lr"] / 10,
        "temperature_schedule": {"kind": "constant"},
    }


def labels(job: JobContext) -> str:
    """Where recovery's teacher logits come from."""
    return "stored" if job.stored_logits is not None else "teacher online"


def recover(job: JobContext, model: nn.Module, settings: dict[str, Any], name: str) -> None:
    """Train `model` (on the job's device) with `settings` (recovery_settings), saved as
    `name`; an earlier attempt's finished weights are loaded instead."""
    if not settings["epochs"] or job.outputs.finished(model, name):
        return
    with method_run(job, settings, model) as run:
        schedule = TemperatureSchedule(
            settings["temperature_schedule"], settings["temperature"], settings["epochs"]
        )
        job.trainer.train_stage(
            model, settings, run.x, method_loss(run), name, temperature=schedule
        )
    job.outputs.save_output(model, name)
