"""Resolving a job request: every name checked against the catalog, defaults filled in
(resolve_spec), what the named entries' capabilities rule out refused naming the field, and the
request's digest for its Idempotency-Key (request_hash). Everything it knows of a model,
dataset, method, teacher source or task comes from its catalog entry (distillery.types.catalog).
"""

import hashlib
import json
from typing import Any

from app.tasks import check_task
from distillery.types.catalog import (
    DATASETS,
    METHODS,
    MODELS,
    STUDENT_SOURCES,
    TEACHER_SOURCES,
)
from distillery.types.catalog.base import LANGUAGE_MODEL, SpecError, resolve_params
from distillery.types.catalog.datasets import dataset_kind
from distillery.types.catalog.models import model_layers
from distillery.types.catalog.student_sources import DEFAULT_STUDENT_SOURCE
from distillery.types.job_spec import EXPORT_FORMATS, JobCreate


def resolve_spec(body: JobCreate) -> dict[str, Any]:
    """Check every name against the catalog and return the spec with all defaults filled in."""
    spec = body.model_dump(mode="json")
    # The webhook's secret is not part of the spec (which the API shows): only its URL.
    webhook = spec.pop("webhook")
    if webhook is not None:
        spec["webhook"] = {"url": webhook["url"]}
    dataset = spec["dataset"]
    dataset["options"] = resolve_params(
        DATASETS, dataset_kind(dataset["name"]), dataset["options"], "dataset"
    )
    if dataset["transfer"] is not None:
        transfer = dataset["transfer"]
        transfer["options"] = resolve_params(
            DATASETS, dataset_kind(transfer["name"]), transfer["options"], "dataset.transfer"
        )
        if (transfer["name"], transfer["options"]) == (dataset["name"], dataset["options"]):
            raise SpecError(
                "dataset.transfer",
                "the transfer set is the dataset itself (it would hold the test examples); "
                "name another set or change its options, e.g. its seed",
            )
    for role in ("teacher", "student"):
        if "arch" in spec[role]:
            spec[role]["params"] = resolve_params(
                MODELS, spec[role]["arch"], spec[role]["params"], role
            )
    _check_teacher_source(spec)
    _check_student_source(spec)
    distill = spec["distill"]
    distill["method_params"] = resolve_params(
        METHODS, distill["method"], distill["method_params"], "distill"
    )
    check_task(spec)
    resolve_layer_pairs(spec)
    _check_hidden_states(spec)
    source = TEACHER_SOURCES[spec["teacher"]["source"]]
    if spec["task"] == LANGUAGE_MODEL and distill["soft_label_top_k"] is None:
        distill["soft_label_top_k"] = source.lm_top_k
    _check_tail_samples(distill)
    _check_compress(spec)
    return spec


def _check_compress(spec: dict[str, Any]) -> None:
    """The compress steps' trainings (prune's recovery, quantize's quantisation-aware
    training) take at most the distillation's epochs: the stored labels of augmented views
    exist for those epochs only. `compress.prune` removes channels from zoo architectures
    whose catalog entry says torch-pruning covers their layers."""
    compress = spec.get("compress") or {}
    epochs = spec["distill"]["epochs"]
    quantize = compress.get("quantize") or {}
    trainings = {
        "prune.recovery_epochs": (compress.get("prune") or {}).get("recovery_epochs", 0),
        # Only a stated tolerance lets quantisation-aware training run.
        "quantize.qat_epochs": (
            quantize.get("qat_epochs", 0) if quantize.get("tolerance") is not None else 0
        ),
    }
    for field, asked in trainings.items():
        if asked > epochs:
            raise SpecError(
                f"compress.{field}",
                f"at most distill.epochs ({epochs}): it reads the labels distillation stored",
            )
    prune = compress.get("prune")
    if prune is None:
        return
    student = spec["student"]
    prunable = [name for name, entry in MODELS.items() if entry.prunable]
    if student["source"] != "zoo" or not MODELS[student["arch"]].prunable:
        what = f"arch {student['arch']!r}" if "arch" in student else repr(student["source"])
        raise SpecError(
            "compress.prune",
            f"structured pruning takes a zoo student of arch {', '.join(prunable)}; not {what} "
            "(a from_teacher student is made smaller by its width options)",
        )


def _check_tail_samples(distill: dict[str, Any]) -> None:
    """Tail samples stand for the teacher's distribution at T = 1 beyond its top k, which
    only forward KL at T = 1 reads without bias: refuse them anywhere else rather than keep
    bytes nothing reads."""
    if distill.get("soft_label_tail_samples") is None:
        return
    where = "distill.soft_label_tail_samples"
    if distill["soft_label_top_k"] is None:
        raise SpecError(where, "needs distill.soft_label_top_k (samples of the rest of the k)")
    if distill["method"] != "kd":
        raise SpecError(where, f"only method kd reads them, not {distill['method']!r}")
    if distill["temperature"] != 1:
        raise SpecError(
            where,
            f"drawn at temperature 1, read only at temperature 1 (not {distill['temperature']!r})",
        )


def _check_student_source(spec: dict[str, Any]) -> None:
    """The student source takes the job's teacher (its entry says which) and gives the
    formats `export` asks for; `export` left out means every format it gives."""
    student = spec["student"]
    student.setdefault("source", DEFAULT_STUDENT_SOURCE)
    entry = STUDENT_SOURCES[student["source"]]
    teacher = spec["teacher"]["source"]
    if entry.teachers is not None and teacher not in entry.teachers:
        raise SpecError(
            "student.source",
            f"a student from {entry.name!r} is made from the teacher's own model; a teacher "
            f"from {teacher!r} has none to give (use a teacher from "
            + " or ".join(repr(t) for t in entry.teachers)
            + ")",
        )
    if spec["export"] is None:
        spec["export"] = list(entry.formats)
    refused = [f for f in spec["export"] if f not in entry.formats]
    if refused:
        raise SpecError(
            "export",
            f"a student from {entry.name!r} exports to {', '.join(entry.formats)}; "
            f"not {', '.join(refused)}",
        )
    spec["export"] = sorted(set(spec["export"]), key=EXPORT_FORMATS.index)
    if entry.name == "from_teacher" and spec["task"] != LANGUAGE_MODEL:
        for option in ("heads", "hidden"):
            if student.get(option) is not None:
                raise SpecError(
                    f"student.{option}",
                    f"`{option}` cuts causal LMs; a student made from a sequence classifier "
                    "keeps the teacher's heads and hidden size (choose its `layers`, and "
                    "`intermediate` for its MLPs)",
                )
        if student.get("importance") == "activation":
            raise SpecError(
                "student.importance",
                "activation importance reads token windows of a causal LM; a student made "
                "from a sequence classifier ranks its MLP neurons by weight magnitude",
            )


def _check_hidden_states(spec: dict[str, Any]) -> None:
    """A method that reads the last hidden states (distilbert) compares a student made from
    the teacher's layers with that teacher, run online."""
    distill = spec["distill"]
    if not METHODS[distill["method"]].hidden_states:
        return
    method = distill["method"]
    if spec["student"]["source"] != "from_teacher" or spec["teacher"]["source"] != "hf":
        raise SpecError(
            "distill.method",
            f"{method!r} compares the hidden states of a student made from its teacher's "
            "layers (student.source 'from_teacher') with that teacher (an 'hf' sequence "
            "classifier)",
        )
    if distill["soft_labels"] == "stored":
        raise SpecError(
            "distill.soft_labels",
            f"{method!r} reads the teacher's hidden states at every step, which the soft-label "
            "store does not keep; use 'auto' or 'online'",
        )


def _check_teacher_source(spec: dict[str, Any]) -> None:
    """A source that lends no PyTorch module (its catalog entry says) cannot run online or
    label augmented views."""
    source = spec["teacher"]["source"]
    if TEACHER_SOURCES[source].lends_module(spec["task"]):
        return
    with_module = " or ".join(
        repr(n) for n, e in TEACHER_SOURCES.items() if e.lends_module(spec["task"])
    )
    if spec["distill"]["soft_labels"] == "online":
        raise SpecError(
            "distill.soft_labels",
            f"a teacher from {source!r} has no PyTorch model to run online; "
            "use soft_labels 'auto' or 'stored'",
        )
    method = spec["distill"]["method"]
    if METHODS[method].teacher_writes:
        raise SpecError(
            "distill.method",
            f"{method!r} learns text the teacher writes byte by byte, which a teacher from "
            f"{source!r} cannot yet (use a teacher from {with_module}, or 'kd')",
        )
    if spec["dataset"]["augment"] is not None:
        raise SpecError(
            "dataset.augment",
            f"a teacher from {source!r} cannot label new views of the examples; "
            f"augmentation needs a zoo model teacher ({with_module})",
        )


def resolve_layer_pairs(spec: dict[str, Any]) -> None:
    """Fill in and check the layer pairs of `spec["distill"]["method_params"]` (resolved):
    a pair left out defaults to the last feature layer of each model; every name must be a
    layer of its model; the teacher must be a zoo model the worker can run online."""
    distill = spec["distill"]
    method = distill["method"]
    fields = METHODS[method].layer_fields()
    if not fields:
        return
    teacher, student = spec["teacher"], spec["student"]
    source = TEACHER_SOURCES[teacher["source"]]
    if not (source.module and source.arch):
        with_layers = " or ".join(repr(n) for n, e in TEACHER_SOURCES.items() if e.arch)
        raise SpecError(
            "distill.method",
            f"{method!r} reads the teacher's intermediate layers; a teacher from "
            f"{teacher['source']!r} has none (use a teacher from {with_layers}, or 'kd')",
        )
    if distill["soft_labels"] == "stored":
        raise SpecError(
            "distill.soft_labels",
            f"{method!r} reads the teacher's intermediate layers at every step, which the "
            "soft-label store does not keep; use 'auto' or 'online'",
        )
    layers = {
        "teacher": model_layers(teacher["arch"], teacher["params"]),
        "student": model_layers(student["arch"], student["params"]),
    }
    for role, names in layers.items():
        if not names:
            arch = spec[role]["arch"]
            raise SpecError(f"{role}.arch", f"{arch!r} has no layers {method!r} can read")
    params = distill["method_params"]
    for name in fields:
        if params.get(name) is None:
            params[name] = [{"student": layers["student"][-1], "teacher": layers["teacher"][-1]}]
        for i, pair in enumerate(params[name]):
            for role in ("student", "teacher"):
                if pair[role] not in layers[role]:
                    raise SpecError(
                        f"distill.method_params.{name}.{i}.{role}",
                        f"{pair[role]!r} is not a layer of the {role} "
                        f"({spec[role]['arch']}); its layers: {', '.join(layers[role])}",
                    )


def request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
