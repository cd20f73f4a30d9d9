"""What a pipeline stage is: a name, whether it applies to a job, the work it implies (its
cost: for progress and for estimates), and what it does to the job's context."""

import math
from dataclasses import dataclass, fields
from typing import ClassVar

from worker.job_context import JobContext


@dataclass(frozen=True)
class StageCost:
    """The work a stage implies: examples through each model, forward only (inferred) or
    forward and backward (trained), optimiser steps, and bytes written to the soft-label
    store. Known once validate has loaded the data."""

    teacher_trained: float = 0.0
    teacher_inferred: float = 0.0
    student_trained: float = 0.0  # on hard labels (the baseline)
    student_distilled: float = 0.0  # with the job's method (tune, hints, distill)
    student_inferred: float = 0.0
    epochs: int = 0
    steps: int = 0
    soft_label_bytes: int = 0

    def passes(self) -> float:
        """In example passes, progress's unit: inference counts about a third of training."""
        inferred = self.teacher_inferred + self.student_inferred
        trained = self.teacher_trained + self.student_trained + self.student_distilled
        return trained + inferred / 3

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Stage:
    name: ClassVar[str]
    # Where the stage runs in the pipeline: stages run in increasing `place` (validate is 0;
    # the others are tens apart, so a new stage names its place without renumbering).
    place: ClassVar[int]

    def applies(self, job: JobContext) -> bool:
        return True

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
