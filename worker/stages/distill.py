"""distill: train the student with the job's distillation method, reading the teacher's logits
from the store or running the teacher online (and tapping its layers, for methods that read
them)."""

import math
from collections.abc import Callable

import torch
from torch import nn

from app.catalog import SpecError
from worker.job_context import JobContext
from worker.kd import FeatureTaps, Method, Outputs, build_method
from worker.kd.losses import UNLABELLED
from worker.kd.schedules import TemperatureSchedule
from worker.stages.base import Stage
from worker.train import Batch

# The teacher's outputs for a batch: (the batch, its inputs) -> Outputs.
TeacherOutputs = Callable[[Batch, torch.Tensor], Outputs]


def training_passes(job: JobContext) -> float:
    """Example passes of a distillation run (the baseline takes as many steps)."""
    distill = job.spec["distill"]
    steps = math.ceil(len(job.data.distill) / distill["batch_size"])
    return float(distill["epochs"] * steps * distill["batch_size"])


class Distill(Stage):
    name = "distill"

    def work(self, job: JobContext) -> float:
        return training_passes(job)

    def run(self, job: JobContext) -> None:
        student = job.student
        if job.finished(student, "student"):
            return
        settings = job.distill_settings
        method = build_method(settings)
        data, stored, device = job.data, job.stored_logits, job.device
        x, y = data.distill, data.y_distill.to(device)
        module = job.teacher.module
        if module is not None:
            module.eval()
        # The taps (forward hooks) exist only for this stage: the student that is evaluated
        # and exported afterwards runs without them.
        with (
            FeatureTaps(student, method.student_layers()) as student_taps,
            FeatureTaps(module, method.teacher_layers()) as teacher_taps,
        ):

            def teacher_outputs(batch: Batch, inputs: torch.Tensor) -> Outputs:
                if stored is not None:
                    return Outputs(stored.for_batch(batch))
                assert module is not None  # validate refuses online without a PyTorch teacher
                with torch.no_grad():
                    logits = module(inputs)
                return Outputs(logits, teacher_taps.take())

            def batch_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
                # The teacher labels the very view the student sees (online), or the store
                # holds its labels of exactly these views (replayed from their seeds).
                views = job.views(x, batch)
                logits = m(views.inputs)
                labels = y[batch.index]
                if views.lam is not None:
                    # A blend of two examples has no one hard label: it learns from the
                    # teacher's labels of the blend (function matching), not from CE.
                    labels = torch.where(views.lam < 1, UNLABELLED, labels)
                assert batch.temperature is not None  # distillation always has one
                return method.loss(
                    Outputs(logits, student_taps.take()),
                    teacher_outputs(batch, views.inputs),
                    labels,
                    temperature=batch.temperature,
                )

            model = with_learnable_parts(job, method, teacher_outputs, student_taps)
            schedule = TemperatureSchedule(
                settings["temperature_schedule"], settings["temperature"], settings["epochs"]
            )
            job.train_stage(model, settings, x, batch_loss, "student", temperature=schedule)
        job.save_output(student, "student")


class StudentWithMethod(nn.Module):
    """The student and a method's learnable parts (e.g. FitNets regressors), trained and
    checkpointed together; its forward is the student's."""

    def __init__(self, student: nn.Module, method: Method) -> None:
        super().__init__()
        self.student = student
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def with_learnable_parts(
    job: JobContext, method: Method, teacher_outputs: TeacherOutputs, student_taps: FeatureTaps
) -> nn.Module:
    """The module distillation trains: the student, plus the method's learnable parts (built
    from the shapes of one batch's features) when it has any, so that they share the
    optimiser and the checkpoint. A method without them trains the bare student, whose
    checkpoints are those of every earlier version."""
    student = job.student
    if not method.student_layers():
        return student
    x = job.data.distill
    probe = torch.arange(min(2, len(x)))
    inputs = x.batch(probe, job.device)
    student.eval()
    with torch.no_grad():
        student(inputs)
        features = student_taps.take()
        teacher = teacher_outputs(Batch(probe, 0, probe, None), inputs)
    try:
        method.build(features, teacher.features)
    except ValueError as exc:
        raise SpecError("distill.method_params", str(exc)) from None
    if not any(True for _ in method.parameters()):
        return student
    return StudentWithMethod(student, method).to(job.device)
