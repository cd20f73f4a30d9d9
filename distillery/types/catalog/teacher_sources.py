"""Teacher sources (`teacher.source`): where a job's teacher comes from, the spec each one
takes, and what it can do: whether it lends a PyTorch module (then it labels online, labels
augmented views and lends its layers), which uploaded file it reads, and how that file must
fit the dataset (checked when the job is created; the worker's validate checks again).
`worker/teachers/` implements each under the same name, one file each."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from distillery.types.catalog.base import (
    BOTH_TASKS,
    CLASSIFICATION,
    LANGUAGE_MODEL,
    Entry,
    SpecError,
    by_name,
)
from distillery.types.fields import FileId, JsonObject, Strict, Text, TrainSettings

FILE_PARAM = "teacher.file_id"


class TeacherSpecBase(Strict):
    """What every teacher spec has: its source."""

    source: str


class TrainTeacher(TeacherSpecBase):
    """A zoo arch trained by the pipeline on the labelled train split."""

    source: Literal["train"] = "train"
    arch: Text
    params: JsonObject = Field(default_factory=dict)
    train: TrainSettings = Field(default_factory=TrainSettings)


class WeightsTeacher(TeacherSpecBase):
    """A zoo arch with uploaded safetensors weights (names and shapes checked; no training)."""

    source: Literal["weights"]
    arch: Text
    params: JsonObject = Field(default_factory=dict)
    file_id: FileId


class OnnxTeacher(TeacherSpecBase):
    """Any framework's model exported to ONNX, run by onnxruntime to label the data."""

    source: Literal["onnx"]
    file_id: FileId


class HfTeacher(TeacherSpecBase):
    """An uploaded Hugging Face model directory (.zip of config.json, *.safetensors and the
    tokenizer's files), loaded offline and never with remote code: a sequence classifier that
    labels a text dataset, or a causal LM that labels the next token of a text corpus cut
    into its own tokens."""

    source: Literal["hf"]
    file_id: FileId
    train: TrainSettings | None = Field(
        default=None,
        description="fine-tune the sequence classifier on the labelled train split first "
        "(every layer and its head: a base encoder saved as a classifier gets its head this "
        "way; a fine-tuning lr such as 5e-5 with adamw suits a pretrained encoder); null: "
        "label with the uploaded weights as they are",
    )


class GgufTeacher(TeacherSpecBase):
    """An uploaded GGUF file (llama.cpp's format) of a causal LM and its tokenizer, read by
    transformers' GGUF support and dequantised to float32: it labels the next token of a text
    corpus cut into its tokens."""

    source: Literal["gguf"]
    file_id: FileId


class LogitsTeacher(TeacherSpecBase):
    """Precomputed teacher logits: one row per row of the dataset file's x, then the transfer
    file's rows. No teacher runs (offline distillation)."""

    source: Literal["logits"]
    file_id: FileId


@dataclass(frozen=True)
class FileCheck:
    """What a source's file check sees: the file's id and `info` (what its upload check found),
    the dataset file's info (None for a builtin dataset), whether the spec names a transfer set,
    the transfer file's info (None unless it is an uploaded file), and the teacher's spec."""

    file_id: str
    info: dict[str, Any]
    data: dict[str, Any] | None
    transfer_named: bool
    transfer: dict[str, Any] | None
    task: str = CLASSIFICATION
    # The job's `teacher` spec.
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileUse:
    """The upload a source reads: its purpose and formats, how to name it in an error, the
    role the job records it under, and how it must fit the dataset."""

    purpose: str
    formats: tuple[str, ...]
    wanted: str
    role: str = "teacher"
    check: Callable[[FileCheck], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class TeacherSourceEntry(Entry):
    # A PyTorch module the worker can run at any step: online soft labels, labels of
    # augmented views, intermediate layers for methods that read them.
    module: bool = True
    # The tasks it lends that module for (None: every task it serves).
    module_tasks: tuple[str, ...] | None = None
    file: FileUse | None = None
    # The source names a zoo arch (`arch`, `params`).
    arch: bool = False
    # The `distill.soft_label_top_k` a language_model job gets when its spec leaves it out:
    # a causal LM's vocabulary (tens of thousands of tokens) makes a full row per token far
    # too big to store (None: all logits, as for any other source).
    lm_top_k: int | None = None

    def lends_module(self, task: str) -> bool:
        """Whether a teacher from this source is a PyTorch module in a job of `task`."""
        return self.module and (self.module_tasks is None or task in self.module_tasks)

    def capabilities(self) -> dict[str, Any]:
        file = self.file
        tasks = self.module_tasks if self.module else ()
        return {
            "module": self.module,
            "module_tasks": list(self.tasks if tasks is None else tasks),
            "arch": self.arch,
            "online_labels": self.module,
            "augmentation": self.module,
            "file": None if file is None else {"purpose": file.purpose, "formats": file.formats},
            "lm_top_k": self.lm_top_k,
        }


def _shape_matches(model_shape: list[Any] | None, data_shape: list[int]) -> bool:
    """An ONNX input shape (batch dim first; dims may be dynamic) against a per-example shape."""
    if model_shape is None:
        return True
    dims = model_shape[1:]
    if len(dims) != len(data_shape):
        return False
    return all(not isinstance(d, int) or d == s for d, s in zip(dims, data_shape, strict=True))


def _check_onnx(check: FileCheck) -> None:
    data, info, file_id = check.data, check.info, check.file_id
    if data is None:
        return
    reads_bytes = (info.get("input") or {}).get("dtype") in ("uint8", "int64")
    text = data.get("modality") == "text"
    if reads_bytes != text:
        raise SpecError(
            FILE_PARAM,
            f"the ONNX model {file_id!r} takes {(info.get('input') or {}).get('dtype')} "
            + ("but the dataset is text (uint8 bytes)" if text else "but the dataset is numbers"),
        )
    model_in = (info.get("input") or {}).get("shape")
    data_shape = data.get("input_shape") or []
    if not _shape_matches(model_in, data_shape):
        raise SpecError(
            FILE_PARAM,
            f"the ONNX model {file_id!r} takes input of shape {model_in} but the dataset's "
            f"examples have shape {data_shape} (plus the batch dimension)",
        )
    out = (info.get("output") or {}).get("shape")
    classes = data.get("num_classes")
    if out and isinstance(out[-1], int) and classes is not None and out[-1] != classes:
        raise SpecError(
            FILE_PARAM,
            f"the ONNX model {file_id!r} outputs {out[-1]} values per example but the dataset "
            f"has {classes} classes",
        )


def _check_hf(check: FileCheck) -> None:
    data, info, file_id = check.data, check.info, check.file_id
    kind = info.get("task", CLASSIFICATION)
    if kind != check.task:
        what = {CLASSIFICATION: "a sequence classifier", LANGUAGE_MODEL: "a causal LM"}
        raise SpecError(
            FILE_PARAM,
            f"the Hugging Face model {file_id!r} is {what.get(kind, kind)}, which serves "
            f"{kind!r} jobs; the job's task is {check.task!r}",
        )
    if kind == LANGUAGE_MODEL and check.spec.get("train") is not None:
        raise SpecError(
            "teacher.train",
            f"the Hugging Face model {file_id!r} is a causal LM; teacher.train fine-tunes "
            "sequence classifiers only",
        )
    if data is None or kind == LANGUAGE_MODEL:
        return
    if data.get("modality") != "text":
        raise SpecError(
            FILE_PARAM,
            f"the Hugging Face model {file_id!r} labels texts; the dataset is not a text "
            "dataset (upload a .jsonl of text and label)",
        )
    classes = data.get("num_classes")
    if classes is not None and info.get("num_labels") != classes:
        raise SpecError(
            FILE_PARAM,
            f"the Hugging Face model {file_id!r} has {info.get('num_labels')} labels but the "
            f"dataset has {classes} classes",
        )


def _check_gguf(check: FileCheck) -> None:
    if check.task != LANGUAGE_MODEL:
        raise SpecError(
            FILE_PARAM,
            f"the GGUF model {check.file_id!r} is a causal LM, which serves 'language_model' "
            f"jobs; the job's task is {check.task!r}",
        )


def _check_logits(check: FileCheck) -> None:
    data, info, file_id, transfer = check.data, check.info, check.file_id, check.transfer
    if data is None:
        raise SpecError(
            "dataset.name",
            "precomputed logits need an uploaded dataset (file:<id>) whose rows they follow; "
            "a builtin dataset has no fixed rows",
        )
    if check.transfer_named and transfer is None:
        raise SpecError(
            "dataset.transfer.name",
            "precomputed logits cover the dataset file and a transfer *file*; upload the "
            "transfer set and name it file:<id>",
        )
    rows = int(data.get("rows", 0))
    expected = rows
    detail = f"the dataset's {rows} rows"
    if transfer is not None:
        transfer_rows = int(transfer.get("rows", 0)) + int(transfer.get("test_rows", 0))
        expected += transfer_rows
        detail += f" + the transfer set's {transfer_rows}"
    if info.get("rows") != expected:
        raise SpecError(
            FILE_PARAM,
            f"logits file {file_id!r} has {info.get('rows')} rows; it needs {expected} ({detail})",
        )
    if info.get("num_classes") != data.get("num_classes"):
        raise SpecError(
            FILE_PARAM,
            f"logits file {file_id!r} has {info.get('num_classes')} columns but the dataset "
            f"has {data.get('num_classes')} classes",
        )
    test_rows = int(info.get("test_rows") or 0)
    if test_rows and test_rows != int(data.get("test_rows") or 0):
        raise SpecError(
            FILE_PARAM,
            f"logits file {file_id!r} has {test_rows} logits_test rows but the dataset has "
            f"{data.get('test_rows') or 0} test rows (x_test)",
        )


# 16 of a token's logits: 100 bytes a token (worker/softlabels.py), under DistillKit's 114.
LM_TOP_K = 16

# The source a teacher spec without `source` has.
DEFAULT_SOURCE = "train"

TEACHER_SOURCES: dict[str, TeacherSourceEntry] = by_name(
    [
        TeacherSourceEntry(
            "train",
            "A zoo arch the pipeline trains on the labelled train split first.",
            TrainTeacher,
            tasks=BOTH_TASKS,
            arch=True,
        ),
        TeacherSourceEntry(
            "weights",
            "A zoo arch with uploaded safetensors weights (checked against the arch; no "
            "pretraining).",
            WeightsTeacher,
            tasks=BOTH_TASKS,
            arch=True,
            file=FileUse("teacher", ("safetensors",), "a safetensors teacher file"),
        ),
        TeacherSourceEntry(
            "onnx",
            "Any framework's model exported to ONNX, run by onnxruntime to label the data.",
            OnnxTeacher,
            module=False,
            file=FileUse("teacher", ("onnx",), "an ONNX teacher file", check=_check_onnx),
        ),
        TeacherSourceEntry(
            "logits",
            "Precomputed logits: a row per row of the dataset file, then the transfer file's.",
            LogitsTeacher,
            module=False,
            file=FileUse(
                "logits", ("npy", "npz"), "a logits file", role="logits", check=_check_logits
            ),
        ),
        TeacherSourceEntry(
            "hf",
            "A Hugging Face model (a zipped save_pretrained folder), offline, no remote code: "
            "a sequence classifier labelling a text dataset with its own tokenizer, or a "
            "causal LM labelling the next token of a text corpus cut into its tokens.",
            HfTeacher,
            tasks=BOTH_TASKS,
            module_tasks=(CLASSIFICATION,),  # a sequence classifier; a causal LM lends none
            lm_top_k=LM_TOP_K,
            file=FileUse(
                "teacher", ("hf",), "a Hugging Face model .zip teacher file", check=_check_hf
            ),
        ),
        TeacherSourceEntry(
            "gguf",
            "A causal LM in a GGUF file (llama.cpp's format, often quantised), read offline by "
            "transformers and dequantised: it labels the next token of a text corpus cut into "
            "its own tokens.",
            GgufTeacher,
            tasks=(LANGUAGE_MODEL,),
            module=False,
            lm_top_k=LM_TOP_K,
            file=FileUse("teacher", ("gguf",), "a GGUF teacher file", check=_check_gguf),
        ),
    ]
)
