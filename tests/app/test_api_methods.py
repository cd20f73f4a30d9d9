"""Distillation methods over the API: the catalog lists them and the layers they may read;
a job's method parameters are checked, and layer pairs filled in, when it is created."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.test_api_jobs import assert_error

CNN1D: dict[str, Any] = {
    "dataset": {"name": "mnist1d", "options": {"num_samples": 200}},
    "teacher": {"arch": "cnn1d", "params": {"channels": 16}},
    "student": {"arch": "cnn1d", "params": {"channels": 4}},
}


def job(method: str, **distill: Any) -> dict[str, Any]:
    return {**CNN1D, "distill": {"method": method, **distill}}


def test_the_catalog_lists_every_method_and_each_models_layers(client: TestClient) -> None:
    methods = {m["name"]: m for m in client.get("/v1/catalog/methods").json()["data"]}
    assert set(methods) == {
        "kd",
        "lskd",
        "dkd",
        "reverse_kl",
        "jsd",
        "seqkd",
        "fitnets",
        "at",
        "distilbert",
    }
    assert methods["distilbert"]["capabilities"]["hidden_states"] is True
    assert methods["lskd"]["params"]["properties"] == {}
    assert methods["fitnets"]["capabilities"]["reads_layers"] is True
    assert set(methods["dkd"]["params"]["properties"]) == {"alpha", "beta"}
    assert set(methods["fitnets"]["params"]["properties"]) == {
        "hints",
        "hint_weight",
        "hint_epochs",
    }
    models = {m["name"]: m for m in client.get("/v1/catalog/models").json()["data"]}
    assert models["resnet_cifar"]["layers"] == ["stem", "stage1", "stage2", "stage3"]
    assert models["cnn1d"]["layers"] == ["conv1", "conv2", "conv3"]
    assert models["mlp"]["layers"] == ["hidden1"]
    assert "hidden" in models["mlp"]["layers_note"]


def test_layer_pairs_default_to_the_last_layer_of_each(client: TestClient) -> None:
    body = job("fitnets")
    body["teacher"] = {"arch": "resnet_cifar", "params": {"depth": 8}}
    body["student"] = {"arch": "cnn2d", "params": {"channels": [4, 8]}}
    body["dataset"] = {"name": "synthetic", "options": {"shape": [3, 8, 8]}}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    params = response.json()["spec"]["distill"]["method_params"]
    assert params == {
        "hints": [{"student": "block2", "teacher": "stage3"}],
        "hint_weight": 1.0,
        "hint_epochs": 0,
    }


def test_method_defaults_are_filled_in(client: TestClient) -> None:
    spec = client.post("/v1/jobs", json=job("dkd")).json()["spec"]
    assert spec["distill"]["method_params"] == {"alpha": 1.0, "beta": 8.0}
    pairs = [{"student": "conv2", "teacher": "conv3"}]
    spec = client.post("/v1/jobs", json=job("at", method_params={"pairs": pairs})).json()["spec"]
    assert spec["distill"]["method_params"] == {"pairs": pairs, "at_weight": 1000.0}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (job("dkd", method_params={"alpha": -1}), "distill.method_params.alpha"),
        (job("dkd", method_params={"gamma": 1}), "distill.method_params.gamma"),
        (
            job("fitnets", method_params={"hints": [{"student": "conv9", "teacher": "conv3"}]}),
            "distill.method_params.hints.0.student",
        ),
        (
            job("at", method_params={"pairs": [{"student": "conv1", "teacher": "stage1"}]}),
            "distill.method_params.pairs.0.teacher",
        ),
        (job("at", method_params={"pairs": []}), "distill.method_params.pairs"),
        (job("fitnets", soft_labels="stored"), "distill.soft_labels"),
        (
            {**job("at"), "teacher": {"source": "onnx", "file_id": "file_0123"}},
            "distill.method",
        ),
    ],
)
def test_bad_method_params_are_refused_naming_the_field(
    client: TestClient, body: dict[str, Any], param: str
) -> None:
    error = assert_error(client.post("/v1/jobs", json=body), 422, param)
    assert error["code"] == "invalid_request"
