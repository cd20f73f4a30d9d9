"""Language-model jobs over the API: the catalog says which entries serve which task, and a
spec that names something its task does not take is refused, naming the field."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.test_api_jobs import assert_error

LM: dict[str, Any] = {
    "task": "language_model",
    "dataset": {"name": "pystdlib"},
    "teacher": {"arch": "gpt", "params": {"layers": 4}},
    "student": {"arch": "gpt", "params": {"layers": 1, "dim": 64}},
}


def with_(**changes: Any) -> dict[str, Any]:
    spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in LM.items()}
    for path, value in changes.items():
        *parents, last = path.split("__")
        part = spec
        for p in parents:
            part = part.setdefault(p, {})
        part[last] = value
    return spec


def test_the_catalog_says_what_serves_each_task(client: TestClient) -> None:
    def tasks(kind: str) -> dict[str, list[str]]:
        listing = client.get(f"/v1/catalog/{kind}").json()["data"]
        return {e["name"]: e["tasks"] for e in listing}

    assert tasks("models")["gpt"] == ["language_model"]
    assert tasks("models")["cnn1d"] == ["classification"]
    assert tasks("datasets")["pystdlib"] == ["language_model"]
    methods = tasks("methods")
    assert methods["kd"] == methods["dkd"] == ["classification", "language_model"]
    assert methods["fitnets"] == methods["at"] == ["classification"]
    assert methods["seqkd"] == ["language_model"]


def test_a_language_model_job_is_queued_with_defaults(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=LM)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["task"] == "language_model"
    assert spec["dataset"]["options"] == {"context": 128, "max_bytes": 2_000_000}
    assert spec["student"]["params"] == {"layers": 1, "heads": 4, "dim": 64, "context": 256}


def test_tail_samples_are_taken_beside_top_k_for_kd_at_temperature_1(client: TestClient) -> None:
    distill = {"soft_label_top_k": 8, "soft_label_tail_samples": 4, "temperature": 1}
    response = client.post("/v1/jobs", json=with_(distill=distill))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["distill"]["soft_label_tail_samples"] == 4


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (with_(task="classification"), "dataset.name"),
        (with_(dataset={"name": "mnist1d"}), "dataset.name"),
        (with_(student={"arch": "cnn1d"}), "student.arch"),
        (with_(distill={"method": "fitnets"}), "distill.method"),
        (with_(dataset__augment={"kind": "signal"}), "dataset.augment"),
        (
            with_(dataset__transfer={"name": "pystdlib", "options": {"max_bytes": 20_000}}),
            "dataset.transfer",
        ),
        (with_(teacher={"source": "logits", "file_id": "file_x"}), "teacher.source"),
        (with_(student__params={"dim": 30, "heads": 4}), "student.params"),
        # Tail samples: only with top-k, read only by kd at temperature 1.
        (with_(distill={"soft_label_tail_samples": 4}), "distill.soft_label_tail_samples"),
        (
            with_(distill={"soft_label_top_k": 8, "soft_label_tail_samples": 4}),
            "distill.soft_label_tail_samples",
        ),
        (
            with_(
                distill={
                    "soft_label_top_k": 8,
                    "soft_label_tail_samples": 4,
                    "temperature": 1,
                    "method": "reverse_kl",
                }
            ),
            "distill.soft_label_tail_samples",
        ),
    ],
)
def test_what_a_language_model_job_cannot_name_is_refused(
    client: TestClient, spec: dict[str, Any], param: str
) -> None:
    assert_error(client.post("/v1/jobs", json=spec), 422, param)
