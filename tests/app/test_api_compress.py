"""`compress` over the API: a job asking to prune and quantise is queued with every default
filled in; what the steps cannot take (an arch torch-pruning does not cover, a student that is
not a zoo arch, a language model, two targets, a recovery longer than distillation) is
refused at POST, naming the field."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.test_api_jobs import assert_error

SPEC: dict[str, Any] = {
    "dataset": {"name": "mnist1d"},
    "teacher": {"arch": "cnn1d"},
    "student": {"arch": "cnn1d", "params": {"channels": 8}},
    "distill": {"epochs": 4},
}


def compressed(prune: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    compress = {"prune": {} if prune is None else prune, "quantize": {"kind": "int8"}}
    return {**SPEC, **changes, "compress": compress}


def test_a_job_that_prunes_and_quantizes_is_queued_with_defaults(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=compressed())
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["compress"] == {
        "prune": {
            "params_ratio": 0.5,
            "latency_ratio": None,
            "importance": "l2",
            "recovery_epochs": 2,
            "recovery_lr": None,
            "tolerance": None,
        },
        "quantize": {
            "kind": "int8",
            "mode": "auto",
            "calibration_examples": 256,
            "tolerance": None,
            "qat_epochs": 2,
            "qat_lr": None,
        },
    }


def test_quantisation_aware_epochs_matter_only_with_a_tolerance(client: TestClient) -> None:
    spec = {**SPEC, "compress": {"quantize": {"qat_epochs": 5}}}  # never run: no tolerance
    assert client.post("/v1/jobs", json=spec).status_code == 201


def test_the_catalog_says_which_archs_can_be_pruned(client: TestClient) -> None:
    listing = client.get("/v1/catalog/models").json()["data"]
    prunable = {e["name"] for e in listing if e["capabilities"]["prunable"]}
    assert prunable == {"mlp", "cnn1d", "cnn2d", "resnet_cifar", "text_cnn"}
    stages = {e["name"]: e for e in client.get("/v1/catalog/stages").json()["data"]}
    assert stages["prune"]["tasks"] == ["classification"]


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (compressed({"params_ratio": 0.5, "latency_ratio": 0.5}), "compress.prune"),
        (compressed({"params_ratio": 1.5}), "compress.prune.params_ratio"),
        (compressed({"importance": "random"}), "compress.prune.importance"),
        (compressed({"recovery_epochs": 5}), "compress.prune.recovery_epochs"),
        (
            {**SPEC, "compress": {"quantize": {"tolerance": 0.01, "qat_epochs": 5}}},
            "compress.quantize.qat_epochs",
        ),
        (
            compressed(student={"arch": "text_transformer"}),
            "compress.prune",
        ),
        (
            compressed(
                task="language_model",
                dataset={"name": "pystdlib"},
                teacher={"arch": "gpt"},
                student={"arch": "gpt"},
            ),
            "compress.prune",
        ),
    ],
    ids=["two-targets", "ratio", "importance", "recovery", "qat", "attention", "language-model"],
)
def test_what_prune_cannot_take_is_refused(
    client: TestClient, spec: dict[str, Any], param: str
) -> None:
    assert_error(client.post("/v1/jobs", json=spec), 422, param)
