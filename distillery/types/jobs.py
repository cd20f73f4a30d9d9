"""A job as the API shows it (`GET /v1/jobs/{id}`, lists), its events, metrics and artifacts."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from distillery.types.estimates import JobCost
from distillery.types.fields import UtcDatetime


class Progress(BaseModel):
    stage: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    fraction: float = 0.0
    eta_seconds: float | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str
    param: str | None = None
    stage: str | None = None


class Job(BaseModel):
    id: str
    object: Literal["job"] = "job"
    name: str | None
    status: str
    stage: str | None
    progress: Progress
    attempt: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    error: ErrorInfo | None
    spec: dict[str, Any] = Field(
        description="the resolved spec, every default filled in; `name` and `metadata` are "
        "the job's own fields, not repeated here"
    )
    metadata: dict[str, Any]
    result: dict[str, Any] | None
    cost: JobCost | None = Field(
        None, description="the job's estimate, and beside it what it did once it succeeded"
    )


class JobListItem(Job):
    """A job in a list: `spec`, `result` and `cost` only when asked for with `include`."""

    spec: dict[str, Any] | None = Field(  # type: ignore[assignment]
        None, description="only with `include=spec`"
    )
    result: dict[str, Any] | None = Field(None, description="only with `include=result`")
    cost: JobCost | None = Field(None, description="only with `include=cost`")


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobListItem]
    has_more: bool


class JobEvent(BaseModel):
    id: int
    object: Literal["job.event"] = "job.event"
    created_at: UtcDatetime
    kind: str
    message: str
    data: dict[str, Any] | None


class JobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobEvent]
    has_more: bool = False


class MetricRow(BaseModel):
    stage: str
    epoch: int
    values: dict[str, Any]


class MetricList(BaseModel):
    object: Literal["list"] = "list"
    data: list[MetricRow]


class Artifact(BaseModel):
    object: Literal["artifact"] = "artifact"
    name: str
    format: str
    bytes: int
    sha256: str
    created_at: UtcDatetime


class ArtifactList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Artifact]
