"""baseline: the same student from scratch on hard labels, with the same seed, optimiser
settings and number of optimiser steps as distillation (epochs are stretched to match), so
the report's kd_gain measures what the teacher added. Runs when the spec asks (`baseline`).

It runs before distill: once it is trained, the teacher is checked against it on the validation
split (worker/diagnosis.py), and a teacher that scores worse is a warning before distillation
spends its budget."""

import math
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from worker import diagnosis
from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost, student_training


class Baseline(Stage):
    name = "baseline"

    def applies(self, job: JobContext) -> bool:
        return bool(job.spec["baseline"])

    def cost(self, job: JobContext) -> StageCost:
        cost = student_training(job, job.spec["distill"]["epochs"], distilled=False)
        # The teacher's check: the validation split through the teacher and the baseline.
        val = float(len(job.data.val))
        return replace(
            cost,
            teacher_inferred=cost.teacher_inferred + val,
            student_inferred=cost.student_inferred + val,
        )

    def run(self, job: JobContext) -> None:
        job.baseline = train_alone(job, job.build_student, "baseline")  # the student's init
        diagnosis.check_teacher(job)


def train_alone(
    job: JobContext, build: Callable[[], nn.Module | None], name: str
) -> nn.Module | None:
    """The model `build` makes, trained on hard labels for as many steps as distillation takes
    (or loaded, when an earlier attempt finished it), saved as `name`. The global RNG (dropout)
    is left as distillation, which runs after, would have found it without this: the
    distilled student does not depend on which baselines ran."""
    settings = job.distill_settings
    with torch.random.fork_rng(devices=_cuda_devices(job)):
        model = build()
        if model is not None and not job.outputs.finished(model, name):
            steps = math.ceil(len(job.data.distill) / settings["batch_size"])
            job.trainer.train_with_labels(model, settings, name, steps)
            job.outputs.save_output(model, name)
    return model


def _cuda_devices(job: JobContext) -> list[int]:
    if job.device.type != "cuda":
        return []
    return [job.device.index if job.device.index is not None else torch.cuda.current_device()]
