"""distill: train the student with the job's distillation method, reading the teacher's logits
from the store or running the teacher online (and tapping its layers, for methods that read
them)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from distillery.types.catalog import SpecError
from worker.batch import Batch
from worker.job_context import JobContext
from worker.kd import FeatureTaps, Method, Outputs, build_method
from worker.kd.losses import UNLABELLED
from worker.kd.schedules import TemperatureSchedule
from worker.stages.base import Stage, StageCost, student_training
from worker.stages.soft_labels import teacher_runs_online
from worker.train import BatchLoss

# What the hints stage leaves for distillation: the student and the method's learnable parts.
HINTS_OUTPUT = "hints"

# The teacher's outputs for a batch: (the batch, its inputs) -> Outputs.
TeacherOutputs = Callable[[Batch, torch.Tensor], Outputs]


class MethodRun:
    """What a stage that trains with the job's method works with, while the layer taps are
    open: the method, the module to train (the student and the method's learnable parts),
    and each batch's student and teacher outputs."""

    def __init__(
        self,
        job: JobContext,
        method: Method,
        student_taps: FeatureTaps,
        teacher_taps: FeatureTaps,
        student: nn.Module,
    ) -> None:
        self.job, self.method = job, method
        self.x, y = job.distill_set()
        self._y = y.to(job.device)
        self._student_taps, self._teacher_taps = student_taps, teacher_taps
        self._teacher = job.teacher.module
        if self._teacher is not None:
            self._teacher.eval()
        self.model = with_learnable_parts(job, method, self.teacher_outputs, student_taps, student)

    def teacher_outputs(self, batch: Batch, inputs: torch.Tensor) -> Outputs:
        if not self.method.reads_teacher_logits:
            return Outputs(inputs.new_empty((0,)))  # its loss never reads them
        stored = self.job.stored_logits
        if stored is not None:
            return Outputs(stored.for_batch(batch))
        assert self._teacher is not None  # validate refuses online without a PyTorch teacher
        with torch.no_grad():
            logits = self._teacher(inputs)
        return Outputs(logits, self._teacher_taps.take())

    def outputs(self, m: nn.Module, batch: Batch) -> tuple[Outputs, Outputs, torch.Tensor]:
        """The student's (`m`'s) and the teacher's outputs for the batch, and its labels."""
        # The teacher labels the very view the student sees (online), or the store holds its
        # labels of exactly these views (replayed from their seeds).
        views = self.job.views(self.x, batch)
        logits = m(views.inputs)
        labels = self._y[batch.index]
        if views.lam is not None:
            # A blend of two examples has no one hard label: it learns from the teacher's
            # labels of the blend (function matching), not from CE.
            labels = torch.where(views.lam < 1, UNLABELLED, labels)
        teacher = self.teacher_outputs(batch, views.inputs)
        # The rows the method compares: one per example, or one per position (sequences).
        task = self.job.task
        student_logits, labels = task.rows(logits, labels)
        teacher_logits = teacher.given
        # Stored rows are one per position already; a method that reads no logits got none.
        if isinstance(teacher_logits, torch.Tensor) and self.method.reads_teacher_logits:
            teacher_logits, _ = task.rows(teacher_logits.float(), labels)
        student = Outputs(student_logits.float(), _float(self._student_taps.take()))
        return student, Outputs(teacher_logits, _float(teacher.features)), labels


def _float(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every loss is computed in float32, whatever precision the forward ran in: under bf16
    autocast a teacher's logits cast to the student's bfloat16 are off by up to 2^-9 of their
    size (0.06 at 30), which at T = 2 moves its softened probabilities by a few percent, the
    very signal distillation learns from."""
    return {name: f.float() for name, f in features.items()}


@contextmanager
def method_run(
    job: JobContext, settings: dict[str, Any] | None = None, student: nn.Module | None = None
) -> Iterator[MethodRun]:
    """A MethodRun for the job: its distillation settings and student unless others are
    given (the prune stage's recovery: kd, the pruned student). The taps (forward hooks)
    exist only inside: the student that is evaluated and exported afterwards runs without
    them."""
    method = build_method(job.distill_settings if settings is None else settings)
    student = job.student if student is None else student
    with (
        FeatureTaps(student, method.student_layers()) as student_taps,
        FeatureTaps(job.teacher.module, method.teacher_layers()) as teacher_taps,
    ):
        yield MethodRun(job, method, student_taps, teacher_taps, student)


def method_loss(run: MethodRun) -> BatchLoss:
    """A batch's loss under the run's method, at the batch's temperature."""

    def batch_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        student, teacher, labels = run.outputs(m, batch)
        assert batch.temperature is not None  # distillation always has one
        return run.method.loss(student, teacher, labels, temperature=batch.temperature)

    return batch_loss


class Distill(Stage):
    name = "distill"

    def cost(self, job: JobContext) -> StageCost:
        online = teacher_runs_online(job)
        return student_training(job, job.spec["distill"]["epochs"], teacher_online=online)

    def run(self, job: JobContext) -> None:
        student = job.student
        if job.outputs.finished(student, "student"):
            return
        settings = job.distill_settings
        with method_run(job) as run:
            hints = job.workdir / f"{HINTS_OUTPUT}.safetensors"
            if hints.exists():
                # The hints stage's student and regressors are where distillation starts.
                run.model.load_state_dict(load_file(str(hints), device=str(job.device)))
                job.event("info", "distill: starting from the student the hints stage trained")
            schedule = TemperatureSchedule(
                settings["temperature_schedule"], settings["temperature"], settings["epochs"]
            )
            job.trainer.train_stage(
                run.model, settings, run.x, method_loss(run), "student", temperature=schedule
            )
        job.outputs.save_output(student, "student")


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
    job: JobContext,
    method: Method,
    teacher_outputs: TeacherOutputs,
    student_taps: FeatureTaps,
    student: nn.Module,
) -> nn.Module:
    """The module distillation trains: the student, plus the method's learnable parts (built
    from the shapes of one batch's features) when it has any, so that they share the
    optimiser and the checkpoint. A method without them trains the bare student, whose
    checkpoints are those of every earlier version."""
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
