"""Resolving a job request: every name checked against the catalog, defaults filled in
(resolve_spec), and the request's digest for its Idempotency-Key (request_hash)."""

import hashlib
import json
from typing import Any

from app import catalog
from app.catalog import SpecError
from app.schemas import JobCreate
from app.tasks import check_task


def resolve_spec(body: JobCreate) -> dict[str, Any]:
    """Check every name against the catalog and return the spec with all defaults filled in."""
    spec = body.model_dump(mode="json")
    # The webhook's secret is not part of the spec (which the API shows): only its URL.
    webhook = spec.pop("webhook")
    if webhook is not None:
        spec["webhook"] = {"url": webhook["url"]}
    dataset = spec["dataset"]
    dataset["options"] = catalog.resolve_params(
        catalog.DATASETS, catalog.dataset_kind(dataset["name"]), dataset["options"], "dataset"
    )
    if dataset["transfer"] is not None:
        transfer = dataset["transfer"]
        transfer["options"] = catalog.resolve_params(
            catalog.DATASETS,
            catalog.dataset_kind(transfer["name"]),
            transfer["options"],
            "dataset.transfer",
        )
        if (transfer["name"], transfer["options"]) == (dataset["name"], dataset["options"]):
            raise SpecError(
                "dataset.transfer",
                "the transfer set is the dataset itself (it would hold the test examples); "
                "name another set or change its options, e.g. its seed",
            )
    for role in ("teacher", "student"):
        if "arch" in spec[role]:
            spec[role]["params"] = catalog.resolve_params(
                catalog.MODELS, spec[role]["arch"], spec[role]["params"], role
            )
    if spec["teacher"]["source"] in ("onnx", "logits", "hf") and spec["distill"]["soft_labels"] == (
        "online"
    ):
        raise SpecError(
            "distill.soft_labels",
            f"a teacher from {spec['teacher']['source']!r} has no PyTorch model to run online; "
            "use soft_labels 'auto' or 'stored'",
        )
    if spec["teacher"]["source"] in ("onnx", "logits", "hf") and dataset["augment"] is not None:
        raise SpecError(
            "dataset.augment",
            f"a teacher from {spec['teacher']['source']!r} cannot label new views of the "
            "examples; augmentation needs a zoo model teacher ('train' or 'weights')",
        )
    distill = spec["distill"]
    distill["method_params"] = catalog.resolve_params(
        catalog.METHODS, distill["method"], distill["method_params"], "distill"
    )
    check_task(spec)
    catalog.resolve_layer_pairs(spec)
    spec["export"] = sorted(set(spec["export"]), key=catalog.EXPORT_FORMATS.index)
    return spec


def request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
