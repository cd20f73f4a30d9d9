"""The job spec, `POST /v1/jobs`'s body (and `POST /v1/jobs/estimate`'s): JobCreate and its
parts. The unions that pick a teacher source, a temperature schedule or an augmentation by
name, and the task's name, are built from the catalog's entries (distillery.types.catalog):
an entry added there is accepted here."""

from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from distillery.types.catalog.augmentations import AUGMENTATIONS, AugmentSpecBase
from distillery.types.catalog.schedules import (
    DEFAULT_SCHEDULE,
    TEMPERATURE_SCHEDULES,
    ScheduleSpecBase,
)
from distillery.types.catalog.student_sources import (
    DEFAULT_STUDENT_SOURCE,
    STUDENT_SOURCES,
    StudentSpecBase,
)
from distillery.types.catalog.tasks import DEFAULT_TASK, TASKS
from distillery.types.catalog.teacher_sources import (
    DEFAULT_SOURCE,
    TEACHER_SOURCES,
    TeacherSpecBase,
)
from distillery.types.fields import (
    BatchSize,
    Fraction,
    JsonObject,
    NonNegativeFinite,
    PositiveFinite,
    Strict,
    Temperature,
    Text,
    TrainSettings,
)

# `hf`: a zipped save_pretrained folder, for students of a Hugging Face family.
ExportFormat = Literal["safetensors", "onnx", "torchscript", "hf"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("safetensors", "onnx", "torchscript", "hf")


def _source(default: str) -> Any:
    def source(value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get("source", default))
        return str(getattr(value, "source", default))

    return source


if TYPE_CHECKING:  # what the checker sees: every member has its tag field
    TeacherSpec = TeacherSpecBase
    StudentSpec = StudentSpecBase
    Augment = AugmentSpecBase
    TemperatureSchedule = ScheduleSpecBase
    TaskName = str
else:
    TeacherSpec = Annotated[
        reduce(or_, (Annotated[e.params, Tag(e.name)] for e in TEACHER_SOURCES.values())),
        Discriminator(
            _source(DEFAULT_SOURCE),
            custom_error_type="invalid_teacher_source",
            custom_error_message="teacher.source must be one of: " + ", ".join(TEACHER_SOURCES),
        ),
    ]
    StudentSpec = Annotated[
        reduce(or_, (Annotated[e.params, Tag(e.name)] for e in STUDENT_SOURCES.values())),
        Discriminator(
            _source(DEFAULT_STUDENT_SOURCE),
            custom_error_type="invalid_student_source",
            custom_error_message="student.source must be one of: " + ", ".join(STUDENT_SOURCES),
        ),
    ]
    Augment = Annotated[
        reduce(or_, (e.params for e in AUGMENTATIONS.values())), Field(discriminator="kind")
    ]
    TemperatureSchedule = Annotated[
        reduce(or_, (e.params for e in TEMPERATURE_SCHEDULES.values())),
        Field(discriminator="kind"),
    ]
    TaskName = Literal[tuple(TASKS)]

# The spec fields whose value is a union tagged by a name the user wrote: a validation error's
# location carries the tag ("teacher.onnx.file_id"), which is no field of theirs.
UNION_TAGS: dict[str, set[str]] = {
    "teacher": set(TEACHER_SOURCES),
    "student": set(STUDENT_SOURCES),
}


class TransferSet(Strict):
    name: Text
    options: JsonObject = Field(default_factory=dict)


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


class DistillSpec(TrainSettings):
    method: Text = "kd"
    method_params: JsonObject = Field(default_factory=dict)
    temperature: Temperature | Literal["auto"] = Field(
        default=4.0, description='"auto": searched on the validation split (the tune stage)'
    )
    temperature_schedule: TemperatureSchedule = Field(default_factory=DEFAULT_SCHEDULE)
    kd_weight: NonNegativeFinite | Literal["auto"] = Field(
        default=0.9,
        description='"auto": searched on the validation split, with ce_weight = 1 - kd_weight',
    )
    ce_weight: NonNegativeFinite = 0.1
    soft_labels: Literal["auto", "stored", "online"] = "auto"
    # Store only each example's k largest teacher logits (and its log-sum-exp); None: all.
    soft_label_top_k: BatchSize | None = None
    # With top-k: also keep this many classes per example drawn from the teacher's tail
    # (T = 1), which `kd` at temperature 1 reads as an unbiased sample of the tail's shape.
    soft_label_tail_samples: Annotated[int, Field(ge=1, le=4096)] | None = None

    @model_validator(mode="after")
    def _some_loss(self) -> "DistillSpec":
        if self.kd_weight == 0 and self.ce_weight == 0:
            raise ValueError("kd_weight and ce_weight cannot both be 0")
        return self


# A compress step's tolerance (prune, quantize): the same field for each.
TOLERANCE = Field(
    default=None,
    description="the most this step may lose in the task's test metric (accuracy as a "
    "fraction: 0.005 is half a point; bits per byte for a language model); beyond it the "
    "job gets a warning and the report row `within: false`",
)


class QuantizeSpec(Strict):
    """int8 quantisation of the distilled student's ONNX graph (onnxruntime.quantization)."""

    kind: Literal["int8"] = "int8"
    mode: Literal["auto", "static", "dynamic"] = Field(
        default="auto",
        description="`static`: QDQ with per-channel int8 weights and int8 activations whose "
        "ranges are calibrated on training (or transfer) examples, never test ones; "
        "`dynamic`: int8 weights, activations quantised at run time; `auto`: static for a "
        "student with convolutions, dynamic otherwise (linear-heavy models)",
    )
    calibration_examples: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=256,
        description="static: the examples whose activations set the ranges (the first of "
        "the transfer set when the job has one, else of the training split)",
    )
    tolerance: NonNegativeFinite | None = TOLERANCE
    qat_epochs: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=2,
        description="when int8 loses more than `tolerance`: epochs of KD from the stored soft "
        "labels with fake-quantised weights, then quantised again (0: never); at most "
        "distill.epochs",
    )
    qat_lr: PositiveFinite | None = Field(
        default=None, description="its learning rate (default: distill.lr / 10)"
    )


class PruneSpec(Strict):
    """Structured pruning of the distilled student (torch-pruning's DepGraph: coupled channel
    groups removed whole), then a short KD recovery from the stored soft labels."""

    params_ratio: Fraction | None = Field(
        default=None,
        description="target: the pruned student keeps at most this fraction of the "
        "distilled student's parameters (0.5 when no target is given)",
    )
    latency_ratio: Fraction | None = Field(
        default=None,
        description="target: the pruned student's batch-1 latency on one CPU thread (PyTorch, "
        "measured after each pruning step) at most this fraction of the distilled student's",
    )
    importance: Literal["l2", "l1", "taylor"] = Field(
        default="l2",
        description="how a channel group is ranked: the L2 or L1 norm of its weights, or "
        "`taylor` (|weight x gradient| of the KD loss on the first training batches)",
    )
    recovery_epochs: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=2,
        description="epochs of KD on the stored soft labels after pruning (0: none); at most "
        "distill.epochs",
    )
    recovery_lr: PositiveFinite | None = Field(
        default=None, description="the recovery's learning rate (default: distill.lr / 10)"
    )
    tolerance: NonNegativeFinite | None = TOLERANCE

    @model_validator(mode="after")
    def _one_target(self) -> "PruneSpec":
        if self.params_ratio is not None and self.latency_ratio is not None:
            raise ValueError("give params_ratio or latency_ratio, not both")
        if self.params_ratio is None and self.latency_ratio is None:
            self.params_ratio = 0.5
        return self


class CompressSpec(Strict):
    """What is done to the distilled student after distillation, each step its own stage (in
    this order: the int8 graph is of the pruned student when both are asked)."""

    prune: PruneSpec | None = Field(
        default=None,
        description="structured pruning + KD recovery: `student.pruned.onnx` and the "
        "report's `pruned` row",
    )
    quantize: QuantizeSpec | None = Field(
        default=None, description="int8: `student.int8.onnx` and the report's `int8` row"
    )


class WebhookSpec(Strict):
    """Where the job's status changes are POSTed, signed with `secret` (HMAC-SHA256; the
    secret is never shown again)."""

    url: Annotated[Text, Field(min_length=8, max_length=2000)] = Field(
        description="an http:// or https:// URL, without credentials (user:password@)"
    )
    secret: Annotated[Text, Field(min_length=16, max_length=200)] = Field(
        description="signs every delivery (Distillery-Signature header); 16-200 characters"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        _ = parsed.port  # raises ValueError for a port out of 0-65535
        # The job's spec shows the URL, and every webhook event names it: a password in it
        # would be shown too. Receivers check the signature under `secret` instead.
        if "@" in parsed.netloc:
            raise ValueError(
                "url may not carry credentials (user:password@): receivers authenticate "
                "deliveries by their signature under `secret`"
            )
        return url


DeviceKind = Literal["any", "cpu", "cuda"]


class Resources(Strict):
    """What the worker that runs the job must have. The job goes to the queue of workers of
    that device kind; a job no worker has announced it can serve is refused (422)."""

    device: DeviceKind = Field(
        default="any",
        description="`cpu` or `cuda` workers only; `any`: whichever worker is free",
    )
    gpus: Annotated[int, Field(ge=0, le=64)] = Field(
        default=0, description="GPUs the worker must have (a `cuda` worker; 0: no requirement)"
    )
    memory_gb: PositiveFinite | None = Field(
        default=None,
        description="memory of the worker's device: each GPU's for a `cuda` worker, the "
        "host's for a `cpu` one",
    )
    processes: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1,
        description="data-parallel processes the training stages run in (torchrun, launched "
        "by the worker: gloo on CPU, one GPU each on CUDA); the same loop and global batch",
    )

    @model_validator(mode="after")
    def _gpus_need_cuda(self) -> "Resources":
        if self.gpus and self.device == "cpu":
            raise ValueError("gpus: a cpu job asks for no GPU (device: cuda, or any)")
        return self


class JobCreate(Strict):
    name: Annotated[Text, Field(max_length=200)] | None = None
    dataset: DatasetSpec
    task: TaskName = Field(
        default=DEFAULT_TASK,
        description="what the models learn: "
        + "; ".join(f"`{e.name}`: {e.description}" for e in TASKS.values()),
    )
    teacher: TeacherSpec
    student: StudentSpec
    distill: DistillSpec = Field(default_factory=DistillSpec)
    baseline: bool = True
    export: list[ExportFormat] | None = Field(
        default=None,
        max_length=4,
        description="the student's formats; default: every format its source gives "
        "(`GET /v1/catalog/student_sources`)",
    )
    compress: CompressSpec = Field(default_factory=CompressSpec)
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    precision: Literal["float32", "mixed"] = Field(
        default="float32",
        description="the arithmetic of every training stage: `float32`, what a plain PyTorch "
        "loop does; `mixed`, bf16 autocast (fp16 with a loss scaler on a GPU without bf16) and "
        "channels_last images on CUDA: faster on tensor cores, its students a little different",
    )
    resources: Resources = Field(
        default_factory=Resources, description="the worker the job needs (routes it)"
    )
    metadata: JsonObject = Field(default_factory=dict, max_length=64)
    webhook: WebhookSpec | None = Field(
        default=None, description="POST each status change of the job to this URL, signed"
    )
