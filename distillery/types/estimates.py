"""What a spec implies before it runs (`POST /v1/jobs/estimate`, a job's `cost.estimate`) and
what a job that succeeded did beside it (`cost.actual`)."""

from typing import Literal

from pydantic import BaseModel, Field


class StageWork(BaseModel):
    """The work one stage implies: examples through each model, forward only (inferred) or
    forward and backward (trained); its epochs and optimiser steps; FLOPs (None where a model
    is not a PyTorch one: an ONNX or logits teacher)."""

    teacher_trained: float
    teacher_inferred: float
    student_trained: float = Field(description="on hard labels (the baseline)")
    student_distilled: float = Field(description="with the job's method (tune, hints, distill)")
    student_inferred: float
    epochs: int
    steps: int
    soft_label_bytes: int
    soft_label_shards: int = Field(
        0, description="shards the soft labels are labelled in (any worker of the queue takes one)"
    )
    flops: int | None


class Work(BaseModel):
    teacher_passes: int = Field(description="examples through the teacher, training included")
    teacher_steps: int = Field(description="optimiser steps pretraining the teacher")
    student_steps: int = Field(
        description="optimiser steps of every student: tuning, hints, distillation, baseline"
    )
    flops: int | None
    soft_label_bytes: int = Field(description="what the soft-label store keeps for the job")
    soft_label_shards: int = Field(0, description="shards the soft labels are labelled in")
    stages: dict[str, StageWork]


class ModelCost(BaseModel):
    flops_per_example: int | None = Field(description="one forward pass over one example")


class DeviceEstimate(BaseModel):
    device: str = Field(description="the device the dry run measured, e.g. 'cpu (8 threads)'")
    total: float = Field(description="predicted seconds of all stages")
    stages: dict[str, float]
    seconds_per_example: dict[str, float] = Field(
        description="measured: teacher_trained, teacher_inferred, student_trained, "
        "student_distilled, student_inferred"
    )


class EstimateNote(BaseModel):
    kind: str
    message: str


class Estimate(BaseModel):
    """What a spec implies before it runs (POST /v1/jobs/estimate, and a job's `cost`)."""

    object: Literal["estimate"] = "estimate"
    work: Work
    models: dict[str, ModelCost]
    wall_seconds: dict[str, DeviceEstimate] = Field(
        description="per device kind the worker has (cpu; cuda where it has a GPU)"
    )
    dry_run_seconds: float
    events: list[EstimateNote] = Field(
        default_factory=list, description="what validate said of the spec (as a job's events)"
    )


class ActualCost(BaseModel):
    """What a job that succeeded did, beside its estimate."""

    device: str = Field(description="the device kind it ran on")
    total: float = Field(description="seconds of its stages at its last attempt")
    stages: dict[str, float]
    steps: dict[str, int] = Field(description="optimiser steps taken per training stage")
    teacher_steps: int
    student_steps: int
    soft_label_bytes: int
    attempt: int


class JobCost(BaseModel):
    estimate: Estimate | None = Field(
        None, description="measured on the job's device after validate"
    )
    actual: ActualCost | None = Field(None, description="once the job succeeded")
