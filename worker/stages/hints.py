"""hints: the first stage of a two-stage method (FitNets with `hint_epochs` > 0): the student
and the method's learnable parts learn the method's feature terms alone (`Method.hint_loss`),
for `Method.hint_epochs()` epochs over the distillation examples, with the distillation
optimiser settings. Distillation then starts from the weights it leaves. Whether it runs is
the method's to say, not an `if` here."""

import torch
from torch import nn

from worker.batch import Batch
from worker.job_context import JobContext
from worker.kd import build_method
from worker.stages.base import Stage, StageCost, student_training
from worker.stages.distill import HINTS_OUTPUT, method_run


def hint_epochs(job: JobContext) -> int:
    return build_method(job.distill_settings).hint_epochs()


class Hints(Stage):
    name = "hints"

    def applies(self, job: JobContext) -> bool:
        return hint_epochs(job) > 0

    def cost(self, job: JobContext) -> StageCost:
        # The method's feature terms read the teacher's layers: it runs online.
        return student_training(job, hint_epochs(job), teacher_online=True)

    def run(self, job: JobContext) -> None:
        if (job.workdir / "student.safetensors").exists():
            return  # an earlier attempt finished distillation, which started from the hints
        with method_run(job) as run:
            if job.outputs.finished(run.model, HINTS_OUTPUT):
                return

            def batch_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
                student, teacher, _labels = run.outputs(m, batch)
                return run.method.hint_loss(student, teacher)

            settings = {**job.distill_settings, "epochs": hint_epochs(job)}
            job.trainer.train_stage(run.model, settings, run.x, batch_loss, HINTS_OUTPUT)
            job.outputs.save_output(run.model, HINTS_OUTPUT)
