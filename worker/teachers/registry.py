"""The teacher-source registry and what every source provides.

A source is built from the job's teacher spec, gives the `vocabulary()` text is cut into (None:
bytes), is handed the prepared data, and then: `validate()` (the validate stage: fail with SpecError
naming the field), `pretrain(runner)` (only `train` trains; the others record that they need none),
`distill_logits()` (the teacher's logits for the distill examples, in order, a batch at a time),
`module` (a PyTorch model for online soft labels, or None), `sha256()` (what the teacher is, for the
soft-label key), `val_logits()` (its logits for the validation split, for the report's diagnosis;
None where it cannot give them) and `evaluate()` (params, bytes, the task's test metrics, CPU
latency; None where unknown)."""

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from app.models import DEFAULT_TENANT
from app.settings import Settings
from distillery.types.catalog import SpecError
from worker.causal_lm.loading import CausalLm
from worker.data import PreparedData
from worker.data.tokens import Vocabulary
from worker.learning_tasks import Task
from worker.learning_tasks.classification import Classification
from worker.registry import Registry
from worker.stage_cost import StageCost
from worker.uploads import UploadedFile, uploaded_file

# distill_logits' default: every distillation example.
ALL_ROWS = slice(None)

FILE_PARAM = "teacher.file_id"


class TrainsWithLabels(Protocol):
    def train_with_labels(self, model: nn.Module, settings: dict[str, Any], name: str) -> None: ...


class KeepsOutputs(Protocol):
    def finished(self, model: nn.Module, name: str) -> bool: ...

    def save_output(self, model: nn.Module, name: str) -> Path: ...


class StageRunner(Protocol):
    """What the pipeline lends a source for its pretraining stage (the job's context): its
    trainer, its stage outputs and its events."""

    @property
    def trainer(self) -> TrainsWithLabels: ...

    @property
    def outputs(self) -> KeepsOutputs: ...

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None: ...


@dataclass
class TeacherContext:
    spec: dict[str, Any]  # the job's resolved `teacher`
    # Prepared after the source is built (its vocabulary, if any, cuts the text): set by then.
    data: PreparedData | None
    settings: Settings
    device: torch.device
    workdir: Path
    seed: int
    dataset_name: str = ""
    # The job's tenant: its uploaded files are the only ones a teacher source may read.
    tenant: str = DEFAULT_TENANT
    # The job's task: it builds the zoo model and measures it.
    task: Task = field(default_factory=Classification)


class TeacherSource:
    name: ClassVar[str]
    # Part of the soft-label key: what the teacher's inputs were.
    preprocessing: ClassVar[str] = "normalized-v1"

    def __init__(self, context: TeacherContext) -> None:
        self.context = context
        self.spec = context.spec
        self.module: nn.Module | None = None
        # The Hugging Face causal LM behind the teacher, if any (students made from it).
        self.causal_lm: CausalLm | None = None

    @property
    def data(self) -> PreparedData:
        data = self.context.data
        assert data is not None, "the data is prepared before the teacher is validated"
        return data

    def vocabulary(self) -> Vocabulary | None:
        """The tokens the teacher reads text as, when it brings its own tokenizer: the
        dataset is then cut into them (called before the data is prepared). None: bytes."""
        return None

    def validate(self) -> None:
        """Check the teacher fits the data; raise SpecError naming the field otherwise."""

    def uploaded(self, purpose: str, fmt: str | None = None, wanted: str = "") -> UploadedFile:
        """The spec's `file_id`: the job tenant's ready upload of `purpose`, and of format
        `fmt` when given (else a SpecError saying the file is not `wanted`)."""
        upload = uploaded_file(
            self.context.settings,
            self.spec["file_id"],
            purpose,
            FILE_PARAM,
            tenant=self.context.tenant,
        )
        if fmt is not None and upload.format != fmt:
            raise SpecError(FILE_PARAM, f"file {upload.id} is {upload.format!r}, not {wanted}")
        return upload

    def pretrain(self, runner: StageRunner) -> None:
        runner.event("info", f"teacher from {self.name}: no pretraining")

    def pretraining_cost(self) -> StageCost:
        """The work `pretrain` does (none, but for a source that trains its teacher)."""
        return StageCost()

    def sha256(self) -> str:
        raise NotImplementedError

    def distill_logits(self, rows: slice = ALL_ROWS) -> Iterator["np.ndarray | torch.Tensor"]:
        """Logits for data.distill[rows] (all of it by default; a shard: worker/label_shards.py),
        in order, a batch at a time (batches counted from the range's first row)."""
        raise NotImplementedError

    def val_logits(self) -> Iterator[torch.Tensor] | None:
        """Logits for data.val, in order, a batch at a time; None where the source cannot give
        them (the diagnosis then skips its check of the teacher against the baseline)."""
        return None

    def onnx_graph(self) -> Path | None:
        """The teacher as an ONNX graph where the source holds one without a PyTorch module
        (an uploaded ONNX teacher); None otherwise (a module is exported instead)."""
        return None

    def evaluate(self) -> dict[str, Any]:
        """{"params", "bytes", "test_<metric>" for each of the task's metrics (e.g.
        test_accuracy, test_loss), "latency_ms_cpu"}; None: unknown."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the manifest and report say the teacher is: source, file_id?, arch?."""
        out: dict[str, Any] = {"source": self.name}
        if "file_id" in self.spec:
            out["file_id"] = self.spec["file_id"]
        if "arch" in self.spec:
            out["arch"] = self.spec["arch"]
            out["arch_params"] = self.spec["params"]
        return out


# A source's class, or a function that picks one from the context (e.g. by the job's task).
TEACHER_SOURCES: Registry[Callable[[TeacherContext], TeacherSource]] = Registry("teacher source")


def training_cost(settings: dict[str, Any], data: PreparedData) -> StageCost:
    """The work of training a teacher on the labelled train split (`teacher.train`)."""
    epochs = settings["epochs"]
    return StageCost(
        teacher_trained=float(epochs * len(data.train)),
        teacher_inferred=float(epochs * len(data.val)),
        epochs=epochs,
        steps=epochs * math.ceil(len(data.train) / settings["batch_size"]),
    )


def median_latency_ms(call: Callable[[], object], runs: int = 50, warmup: int = 5) -> float:
    """Median time of `call` in milliseconds, after warm-up."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
