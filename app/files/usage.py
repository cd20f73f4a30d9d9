"""What a job may do with the files it names (checked when the job is created): each file is the
tenant's, ready, of the purpose and format its role takes, and fits the dataset, whose examples
each zoo model can read (its catalog entry's Misfit rule). What a teacher source reads and how
its file must fit come from its catalog entry (distillery.types.catalog.teacher_sources)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import File, FileStatus
from distillery.types.catalog import AUGMENTATIONS, MODELS, TEACHER_SOURCES
from distillery.types.catalog.base import CLASSIFICATION, SpecError
from distillery.types.catalog.datasets import FILE_PREFIX
from distillery.types.catalog.teacher_sources import FILE_PARAM, FileCheck


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
    if dataset is not None:
        _check_model_shapes(spec, dataset.id, data_info.get("input_shape") or [])
    augment = spec["dataset"].get("augment")
    modality = data_info.get("modality", "values")
    if augment is not None and modality not in AUGMENTATIONS[augment["kind"]].modalities:
        raise SpecError(
            "dataset.augment",
            f"{modality} datasets take no augmentation yet ({augment['kind']!r} transforms "
            f"{', '.join(AUGMENTATIONS[augment['kind']].modalities)})",
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
    use = TEACHER_SOURCES[teacher["source"]].file
    if use is None:
        return used
    row = _ready_file(session, tenant, teacher["file_id"], FILE_PARAM)
    if row.purpose != use.purpose or row.format not in use.formats:
        raise SpecError(
            FILE_PARAM,
            f"teacher source {teacher['source']!r} needs {use.wanted}; file {row.id!r} is "
            f"{_describe(row)}",
        )
    used.append((row.id, use.role))
    if use.check is not None:
        use.check(
            FileCheck(
                file_id=row.id,
                info=row.info or {},
                data=data_info if dataset is not None else None,
                transfer_named=transfer_spec is not None,
                transfer=(transfer.info or {}) if transfer is not None else None,
                task=task,
                spec=teacher,
            )
        )
    return used


def _check_model_inputs(spec: dict[str, Any], modality: str) -> None:
    """Byte-level models read text datasets; the others read numbers."""
    wanted = "bytes" if modality == "text" else "values"
    for role in ("teacher", "student"):
        arch = spec[role].get("arch")
        if arch is None or MODELS[arch].inputs == wanted:
            continue
        fitting = [n for n, e in MODELS.items() if e.inputs == wanted and CLASSIFICATION in e.tasks]
        what = "a text dataset" if modality == "text" else "a dataset of numbers"
        raise SpecError(
            f"{role}.arch",
            f"{arch!r} reads {MODELS[arch].inputs}; {what} takes "
            + ", ".join(repr(n) for n in fitting),
        )


def _check_model_shapes(spec: dict[str, Any], file_id: str, input_shape: list[int]) -> None:
    """Each zoo model, with its resolved params, can read the dataset file's examples (the
    shape its check recorded): the worker's validate would refuse it otherwise."""
    for role in ("teacher", "student"):
        arch = spec[role].get("arch")
        if arch is None:
            continue
        misfit = MODELS[arch].input_misfit(spec[role]["params"], list(input_shape))
        if misfit is not None:
            raise SpecError(f"{role}.{misfit.field}", f"{misfit.message} (file {file_id!r})")
