"""Request and response shapes of the HTTP API."""

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    model_validator,
)

from app import catalog


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return value


# Deeper JSON than this is refused: no job spec needs it, and every layer of the service
# (JSON columns, serialisers) recurses over it.
MAX_JSON_DEPTH = 32


def _storable_text(value: str) -> str:
    """Text PostgreSQL and SQLite can store: no NUL, no lone UTF-16 surrogate (JSON's parser
    accepts "\\ud800"; UTF-8 cannot encode it, so the row could be written but never read)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone UTF-16 surrogate)") from None
    return value


def _storable_json(value: Any, depth: int = 0) -> Any:
    """JSON the database can store and read back: finite numbers (JSON has no NaN or Infinity,
    PostgreSQL refuses them; Python's parser accepts both), storable text in keys and values,
    at most MAX_JSON_DEPTH levels deep."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float):
        _finite(value)
    elif isinstance(value, str):
        _storable_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable_text(str(key))
            _storable_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _storable_json(item, depth + 1)
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


PositiveFinite = Annotated[float, Field(gt=0), AfterValidator(_finite)]
# Past 1,000 the softened distributions are uniform to float32 precision (and a huge T makes
# T^2 overflow); no published schedule goes near it.
Temperature = Annotated[float, Field(gt=0, le=1000), AfterValidator(_finite)]
NonNegativeFinite = Annotated[float, Field(ge=0), AfterValidator(_finite)]
Epochs = Annotated[int, Field(ge=1, le=10_000)]
BatchSize = Annotated[int, Field(ge=1, le=65_536)]


ExportFormat = Literal["safetensors", "onnx", "torchscript"]


def _utc_iso(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


# Stored as naive UTC; served with an explicit "Z" so clients don't read local time.
UtcDatetime = Annotated[datetime, PlainSerializer(_utc_iso, return_type=str)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSettings(Strict):
    epochs: Epochs = 30
    batch_size: BatchSize = 128
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFinite = 0.003
    weight_decay: NonNegativeFinite = 0.0
    lr_schedule: Literal["constant", "cosine"] = "constant"


class TransferSet(Strict):
    name: Text
    options: JsonObject = Field(default_factory=dict)


NoiseScale = Annotated[float, Field(ge=0, le=10), AfterValidator(_finite)]


MixAlpha = Annotated[float, Field(ge=0, le=100), AfterValidator(_finite)]


class ImageAugment(Strict):
    """Images (channels, height, width): random crop after zero padding, horizontal flip, and
    optionally mixup / cutmix with the next example of the epoch."""

    kind: Literal["image"]
    crop_padding: Annotated[int, Field(ge=0, le=64)] = 4
    flip: bool = True
    mixup: MixAlpha = Field(default=0.0, description="Beta(alpha, alpha) of mixup; 0: off")
    cutmix: MixAlpha = Field(
        default=0.0, description="Beta(alpha, alpha) of cutmix; 0: off (both on: half each)"
    )


class SignalAugment(Strict):
    """1-D signals (length,) or (channels, length): random shift (edge padded), gaussian noise."""

    kind: Literal["signal"]
    shift: Annotated[int, Field(ge=0, le=4096)] = 4
    noise: NoiseScale = Field(default=0.05, description="noise std, in units of the data's std")


class TabularAugment(Strict):
    """Any inputs: gaussian noise."""

    kind: Literal["tabular"]
    noise: NoiseScale = Field(default=0.1, description="noise std, in units of the data's std")


Augment = Annotated[ImageAugment | SignalAugment | TabularAugment, Field(discriminator="kind")]


class DatasetSpec(Strict):
    name: Text = Field(description="a builtin dataset, or file:<id> of an uploaded one")
    options: JsonObject = Field(default_factory=dict)
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    transfer: TransferSet | None = None
    augment: Augment | None = Field(
        default=None,
        description="per-example random transforms for every training stage, seeded by "
        "(job seed, epoch, example); the teacher labels the very view the student sees",
    )


FileId = Annotated[Text, Field(min_length=1, max_length=40, description="id of an uploaded file")]


class TrainTeacher(Strict):
    """A zoo arch trained by the pipeline on the labelled train split."""

    source: Literal["train"] = "train"
    arch: Text
    params: JsonObject = Field(default_factory=dict)
    train: TrainSettings = Field(default_factory=TrainSettings)


class WeightsTeacher(Strict):
    """A zoo arch with uploaded safetensors weights (names and shapes checked; no training)."""

    source: Literal["weights"]
    arch: Text
    params: JsonObject = Field(default_factory=dict)
    file_id: FileId


class OnnxTeacher(Strict):
    """Any framework's model exported to ONNX, run by onnxruntime to label the data."""

    source: Literal["onnx"]
    file_id: FileId


class HfTeacher(Strict):
    """An uploaded Hugging Face model directory (.zip of config.json, *.safetensors and the
    tokenizer's files): a sequence classifier that labels a text dataset, loaded offline and
    never with remote code."""

    source: Literal["hf"]
    file_id: FileId


class LogitsTeacher(Strict):
    """Precomputed teacher logits: one row per row of the dataset file's x, then the transfer
    file's rows. No teacher runs (offline distillation)."""

    source: Literal["logits"]
    file_id: FileId


def _teacher_source(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("source", "train"))
    return str(getattr(value, "source", "train"))


TeacherSpec = Annotated[
    Annotated[TrainTeacher, Tag("train")]
    | Annotated[WeightsTeacher, Tag("weights")]
    | Annotated[OnnxTeacher, Tag("onnx")]
    | Annotated[LogitsTeacher, Tag("logits")]
    | Annotated[HfTeacher, Tag("hf")],
    Discriminator(
        _teacher_source,
        custom_error_type="invalid_teacher_source",
        custom_error_message="teacher.source must be one of: train, weights, onnx, logits, hf",
    ),
]


class StudentSpec(Strict):
    arch: Text
    params: JsonObject = Field(default_factory=dict)


class ConstantSchedule(Strict):
    kind: Literal["constant"] = "constant"


class LinearSchedule(Strict):
    kind: Literal["linear"]
    end: Temperature = Field(description="temperature at the last epoch")


class CosineSchedule(Strict):
    kind: Literal["cosine"]
    end: Temperature = Field(description="temperature at the last epoch")


class StepSchedule(Strict):
    kind: Literal["step"]
    step_size: Epochs = Field(description="epochs between changes")
    gamma: PositiveFinite = Field(description="factor applied at each step")


class PlateauSchedule(Strict):
    kind: Literal["plateau"]
    metric: Literal["val_loss", "val_accuracy"] = "val_loss"
    factor: PositiveFinite = Field(0.5, description="T *= factor when the metric stalls")
    patience: Annotated[int, Field(ge=0, le=10_000)] = 2
    min_temperature: Temperature = 1.0
    max_temperature: Temperature = 20.0

    @model_validator(mode="after")
    def _ordered(self) -> "PlateauSchedule":
        if self.min_temperature > self.max_temperature:
            raise ValueError("min_temperature is above max_temperature")
        return self


TemperatureSchedule = Annotated[
    ConstantSchedule | LinearSchedule | CosineSchedule | StepSchedule | PlateauSchedule,
    Field(discriminator="kind"),
]


class DistillSpec(TrainSettings):
    method: Text = "kd"
    method_params: JsonObject = Field(default_factory=dict)
    temperature: Temperature | Literal["auto"] = Field(
        default=4.0, description='"auto": searched on the validation split (the tune stage)'
    )
    temperature_schedule: TemperatureSchedule = Field(default_factory=ConstantSchedule)
    kd_weight: NonNegativeFinite | Literal["auto"] = Field(
        default=0.9,
        description='"auto": searched on the validation split, with ce_weight = 1 - kd_weight',
    )
    ce_weight: NonNegativeFinite = 0.1
    soft_labels: Literal["auto", "stored", "online"] = "auto"
    # Store only each example's k largest teacher logits (and its log-sum-exp); None: all.
    soft_label_top_k: Annotated[int, Field(ge=1, le=65_536)] | None = None

    @model_validator(mode="after")
    def _some_loss(self) -> "DistillSpec":
        if self.kd_weight == 0 and self.ce_weight == 0:
            raise ValueError("kd_weight and ce_weight cannot both be 0")
        return self


class WebhookSpec(Strict):
    """Where the job's status changes are POSTed, signed with `secret` (HMAC-SHA256; the
    secret is never shown again)."""

    url: Annotated[Text, Field(min_length=8, max_length=2000)] = Field(
        description="an http:// or https:// URL"
    )
    secret: Annotated[Text, Field(min_length=16, max_length=200)] = Field(
        description="signs every delivery (Distillery-Signature header); 16-200 characters"
    )

    @model_validator(mode="after")
    def _http_url(self) -> "WebhookSpec":
        parsed = urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        return self


class JobCreate(Strict):
    name: Annotated[Text, Field(max_length=200)] | None = None
    dataset: DatasetSpec
    task: Literal["classification", "language_model"] = Field(
        default="classification",
        description="what the models learn: `classification` (one label per example) or "
        "`language_model` (the next byte at every position of a text)",
    )
    teacher: TeacherSpec
    student: StudentSpec
    distill: DistillSpec = Field(default_factory=DistillSpec)
    baseline: bool = True
    export: list[ExportFormat] = Field(
        default_factory=lambda: list(catalog.EXPORT_FORMATS), max_length=3
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    metadata: JsonObject = Field(default_factory=dict, max_length=64)
    webhook: WebhookSpec | None = Field(
        default=None, description="POST each status change of the job to this URL, signed"
    )


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
    flops: int | None


class Work(BaseModel):
    teacher_passes: int = Field(description="examples through the teacher, training included")
    teacher_steps: int = Field(description="optimiser steps pretraining the teacher")
    student_steps: int = Field(
        description="optimiser steps of every student: tuning, hints, distillation, baseline"
    )
    flops: int | None
    soft_label_bytes: int = Field(description="what the soft-label store keeps for the job")
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


class CatalogEntry(BaseModel):
    name: str
    description: str
    params: dict[str, Any]
    layers: list[str] | None = Field(
        default=None,
        description="models: the layers methods may tap (for the default params); see layers_note",
    )
    layers_note: str | None = None
    tasks: list[str] = Field(description="the tasks (`task`) a job may name this entry in")


class CatalogList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CatalogEntry]


class ErrorBody(BaseModel):
    code: str
    message: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# --- files --------------------------------------------------------------------------------------

FilePurpose = Literal["dataset", "teacher", "logits"]


class File(BaseModel):
    id: str
    object: Literal["file"] = "file"
    purpose: str
    filename: str
    format: str
    bytes: int
    sha256: str | None
    status: str
    options: dict[str, Any]
    info: dict[str, Any] | None = Field(
        description="what the check found: rows, input shape and dtype, classes, ONNX signature"
    )
    error: ErrorBody | None = Field(description="why the file was refused")
    created_at: UtcDatetime


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[File]
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
