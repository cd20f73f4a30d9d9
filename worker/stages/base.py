"""What a pipeline stage is: a name, whether it applies to a job, the work it implies (its
cost: for progress and for estimates), and what it does to the job's context."""

import math
from pathlib import Path
from typing import ClassVar

from torch import nn

from distillery.types.catalog import STAGES as CATALOG
from worker import export
from worker.job_context import JobContext
from worker.stage_cost import StageCost


class Stage:
    name: ClassVar[str]

    def applies(self, job: JobContext) -> bool:
        """Whether the stage runs for the job: by default, when its catalog entry serves the
        job's task."""
        return job.task.name in CATALOG[self.name].tasks

    def cost(self, job: JobContext) -> StageCost:
        return StageCost()

    def work(self, job: JobContext) -> float:
        """Planned work in example passes (for progress)."""
        return self.cost(job).passes()

    def run(self, job: JobContext) -> None:
        raise NotImplementedError


def student_training(
    job: JobContext, epochs: int, *, distilled: bool = True, teacher_online: bool = False
) -> StageCost:
    """`epochs` of training a student over the distillation examples with the distillation
    batch size (with the job's method, or on hard labels), validated after each epoch; the
    teacher runs alongside when it is online."""
    batch_size = job.distill_settings["batch_size"]
    steps = epochs * math.ceil(len(job.data.distill) / batch_size)
    examples = float(steps * batch_size)
    return StageCost(
        teacher_inferred=examples if teacher_online else 0.0,
        student_trained=0.0 if distilled else examples,
        student_distilled=examples if distilled else 0.0,
        student_inferred=float(epochs * len(job.data.val)),
        epochs=epochs,
        steps=steps,
    )


def export_graph(job: JobContext, model: nn.Module, path: Path) -> None:
    """`model` as an ONNX graph at `path` that takes the dataset's raw inputs, named as the
    task's signature says (what student.onnx is), back on the job's device afterwards."""
    task = job.task
    signature = task.signature(job.data)
    names = (signature["input"]["name"], signature["output"]["name"])
    try:
        export.export_onnx(
            model, task.example(job.data, 2), path, names, dynamic_time=task.dynamic_time
        )
    finally:
        model.to(job.device)
