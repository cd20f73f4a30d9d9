"""What a job may do with the files it names (checked when the job is created)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import catalog
from app.catalog import FILE_PREFIX, SpecError
from app.models import File, FileStatus

# teacher.source -> (purpose, formats) of the file it names
TEACHER_FILES = {
    "weights": ("teacher", ("safetensors",), "a safetensors teacher file"),
    "onnx": ("teacher", ("onnx",), "an ONNX teacher file"),
    "logits": ("logits", ("npy", "npz"), "a logits file"),
    "hf": ("teacher", ("hf",), "a Hugging Face model .zip teacher file"),
}


def _describe(row: File) -> str:
    return f"a {row.purpose} file ({row.format})"


def _ready_file(session: Session, tenant: str, file_id: str, param: str) -> File:
    row = session.scalar(select(File).where(File.id == file_id, File.tenant == tenant))
    if row is None:
        raise SpecError(param, f"no file {file_id!r}")
    if row.status == FileStatus.PROCESSING:
        raise SpecError(
            param, f"file {file_id!r} is still processing; retry once its status is ready"
        )
    if row.status != FileStatus.READY:
        reason = (row.error or {}).get("message", "")
        raise SpecError(
            param,
            f"file {file_id!r} has status {row.status}" + (f": {reason}" if reason else ""),
        )
    return row


def _dataset_file(
    session: Session, tenant: str, name: str, param: str, *, labelled: bool
) -> File | None:
    if not name.startswith(FILE_PREFIX):
        return None
    file_id = name[len(FILE_PREFIX) :]
    row = _ready_file(session, tenant, file_id, param)
    if row.purpose != "dataset":
        raise SpecError(param, f"file {file_id!r} is {_describe(row)}, not a dataset file")
    if labelled and not (row.info or {}).get("labelled"):
        raise SpecError(
            param,
            f"file {file_id!r} has no labels; use it as dataset.transfer (a transfer set) "
            "or upload it with labels",
        )
    return row


def _shape_matches(model_shape: list[Any] | None, data_shape: list[int]) -> bool:
    """An ONNX input shape (batch dim first; dims may be dynamic) against a per-example shape."""
    if model_shape is None:
        return True
    dims = model_shape[1:]
    if len(dims) != len(data_shape):
        return False
    return all(not isinstance(d, int) or d == s for d, s in zip(dims, data_shape, strict=True))


def check_job_files(session: Session, tenant: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Check every file the resolved `spec` names (the tenant's, ready, of the right purpose and
    shape for its role); return (file_id, role) pairs. Raises SpecError naming the field."""
    used: list[tuple[str, str]] = []
    dataset = _dataset_file(session, tenant, spec["dataset"]["name"], "dataset.name", labelled=True)
    if dataset is not None:
        used.append((dataset.id, "dataset"))
    data_info = (dataset.info or {}) if dataset is not None else {}
    task = spec.get("task", "classification")
    if dataset is not None and data_info.get("task", "classification") != task:
        raise SpecError(
            "dataset.name",
            f"file {dataset.id!r} is a {data_info.get('task', 'classification')} dataset "
            f"({dataset.format}); the job's task is {task!r}",
        )

    if task == "classification":
        _check_model_inputs(spec, data_info.get("modality", "values"))
    if data_info.get("modality") == "text" and spec["dataset"].get("augment") is not None:
        raise SpecError(
            "dataset.augment",
            "text datasets take no augmentation yet (its kinds transform numbers and images)",
        )

    transfer_spec = spec["dataset"].get("transfer")
    transfer = None
    if transfer_spec is not None:
        transfer = _dataset_file(
            session, tenant, transfer_spec["name"], "dataset.transfer.name", labelled=False
        )
    if transfer is not None:
        used.append((transfer.id, "transfer"))
        transfer_shape = (transfer.info or {}).get("input_shape")
        transfer_modality = (transfer.info or {}).get("modality", "values")
        if transfer_modality != data_info.get("modality", "values"):
            raise SpecError(
                "dataset.transfer.name",
                f"the transfer set is {transfer_modality}; the dataset is "
                f"{data_info.get('modality', 'values')}",
            )
        if dataset is not None and transfer_shape != data_info.get("input_shape"):
            raise SpecError(
                "dataset.transfer.name",
                f"the transfer set's examples have shape {transfer_shape} but the dataset's "
                f"have {data_info.get('input_shape')}",
            )

    teacher = spec["teacher"]
    source = teacher.get("source", "train")
    if source not in TEACHER_FILES:
        return used
    purpose, fmts, wanted = TEACHER_FILES[source]
    row = _ready_file(session, tenant, teacher["file_id"], "teacher.file_id")
    if row.purpose != purpose or row.format not in fmts:
        raise SpecError(
            "teacher.file_id",
            f"teacher source {source!r} needs {wanted}; file {row.id!r} is {_describe(row)}",
        )
    info = row.info or {}
    if source == "onnx":
        used.append((row.id, "teacher"))
        if dataset is not None:
            _check_onnx(row.id, info, data_info)
    elif source == "hf":
        used.append((row.id, "teacher"))
        if dataset is not None:
            _check_hf(row.id, info, data_info)
    elif source == "logits":
        used.append((row.id, "logits"))
        _check_logits(
            row.id, info, data_info if dataset is not None else None, transfer_spec, transfer
        )
    else:
        used.append((row.id, "teacher"))
    return used


def _check_model_inputs(spec: dict[str, Any], modality: str) -> None:
    """Byte-level models read text datasets; the others read numbers."""
    wanted = "bytes" if modality == "text" else "values"
    for role in ("teacher", "student"):
        arch = spec[role].get("arch")
        if arch is None or catalog.MODELS[arch].inputs == wanted:
            continue
        fitting = [
            n
            for n, e in catalog.MODELS.items()
            if e.inputs == wanted and "classification" in e.tasks
        ]
        what = "a text dataset" if modality == "text" else "a dataset of numbers"
        raise SpecError(
            f"{role}.arch",
            f"{arch!r} reads {catalog.MODELS[arch].inputs}; {what} takes "
            + ", ".join(repr(n) for n in fitting),
        )


def _check_onnx(file_id: str, info: dict[str, Any], data: dict[str, Any]) -> None:
    reads_bytes = (info.get("input") or {}).get("dtype") in ("uint8", "int64")
    text = data.get("modality") == "text"
    if reads_bytes != text:
        raise SpecError(
            "teacher.file_id",
            f"the ONNX model {file_id!r} takes {(info.get('input') or {}).get('dtype')} "
            + ("but the dataset is text (uint8 bytes)" if text else "but the dataset is numbers"),
        )
    model_in = (info.get("input") or {}).get("shape")
    data_shape = data.get("input_shape") or []
    if not _shape_matches(model_in, data_shape):
        raise SpecError(
            "teacher.file_id",
            f"the ONNX model {file_id!r} takes input of shape {model_in} but the dataset's "
            f"examples have shape {data_shape} (plus the batch dimension)",
        )
    out = (info.get("output") or {}).get("shape")
    classes = data.get("num_classes")
    if out and isinstance(out[-1], int) and classes is not None and out[-1] != classes:
        raise SpecError(
            "teacher.file_id",
            f"the ONNX model {file_id!r} outputs {out[-1]} values per example but the dataset "
            f"has {classes} classes",
        )


def _check_hf(file_id: str, info: dict[str, Any], data: dict[str, Any]) -> None:
    if data.get("modality") != "text":
        raise SpecError(
            "teacher.file_id",
            f"the Hugging Face model {file_id!r} labels texts; the dataset is not a text "
            "dataset (upload a .jsonl of text and label)",
        )
    classes = data.get("num_classes")
    if classes is not None and info.get("num_labels") != classes:
        raise SpecError(
            "teacher.file_id",
            f"the Hugging Face model {file_id!r} has {info.get('num_labels')} labels but the "
            f"dataset has {classes} classes",
        )


def _check_logits(
    file_id: str,
    info: dict[str, Any],
    data: dict[str, Any] | None,
    transfer_spec: dict[str, Any] | None,
    transfer: File | None,
) -> None:
    if data is None:
        raise SpecError(
            "dataset.name",
            "precomputed logits need an uploaded dataset (file:<id>) whose rows they follow; "
            "a builtin dataset has no fixed rows",
        )
    if transfer_spec is not None and transfer is None:
        raise SpecError(
            "dataset.transfer.name",
            "precomputed logits cover the dataset file and a transfer *file*; upload the "
            "transfer set and name it file:<id>",
        )
    rows = int(data.get("rows", 0))
    expected = rows
    detail = f"the dataset's {rows} rows"
    if transfer is not None:
        t = transfer.info or {}
        transfer_rows = int(t.get("rows", 0)) + int(t.get("test_rows", 0))
        expected += transfer_rows
        detail += f" + the transfer set's {transfer_rows}"
    if info.get("rows") != expected:
        raise SpecError(
            "teacher.file_id",
            f"logits file {file_id!r} has {info.get('rows')} rows; it needs {expected} ({detail})",
        )
    if info.get("num_classes") != data.get("num_classes"):
        raise SpecError(
            "teacher.file_id",
            f"logits file {file_id!r} has {info.get('num_classes')} columns but the dataset "
            f"has {data.get('num_classes')} classes",
        )
    test_rows = int(info.get("test_rows") or 0)
    if test_rows and test_rows != int(data.get("test_rows") or 0):
        raise SpecError(
            "teacher.file_id",
            f"logits file {file_id!r} has {test_rows} logits_test rows but the dataset has "
            f"{data.get('test_rows') or 0} test rows (x_test)",
        )
