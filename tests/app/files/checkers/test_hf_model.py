"""Teacher .zip uploads of a Hugging Face model folder: config.json, safetensors weights and a
tokenizer extracted as prepared files; pickles, code and remote code (auto_map) refused."""

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import load_file
from sqlalchemy import select

from app.db import session_scope
from app.models import JobFile
from app.settings import Settings
from app.store.cache import DownloadCache
from app.store.local import LocalStore
from tests.app.files.conftest import refused, upload_checked
from tests.app.files.test_usage import assert_422, dataset, job
from tests.worker.teachers.tiny_causal_lm import save_tiny_causal_lm
from tests.worker.teachers.tiny_hf import edit_config, save_tiny_classifier, zip_folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("hf") / "model")


@pytest.fixture
def folder(saved: Path, tmp_path: Path) -> Path:
    """A copy of the saved model folder this test may change."""
    return Path(shutil.copytree(saved, tmp_path / "model"))


def stored(settings: Settings, key: str) -> Path:
    return LocalStore(settings.artifact_url).local_path(
        key, DownloadCache(Path(settings.work_dir), 0)
    )


def test_a_model_folder_is_described_and_its_files_extracted(
    client: TestClient, settings: Settings, folder: Path
) -> None:
    archive = zip_folder(folder, extra={"model/README.md": b"# tiny", "model/onnx/x.onnx": b"x"})
    body = upload_checked(client, "tiny.zip", archive, "teacher")
    assert body["status"] == "ready", body
    info = body["info"]
    params = sum(a.size for a in load_file(folder / "model.safetensors").values())
    assert info["format"] == "hf" and info["task"] == "classification"
    assert info["model_type"] == "bert"
    assert info["architectures"] == ["BertForSequenceClassification"]
    assert info["num_labels"] == 3
    assert info["class_names"] == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert info["tokenizer"] == ["tokenizer.json"]
    assert info["weights"] == ["model.safetensors"] and info["params"] == params
    assert (info["ignored"], info["ignored_count"]) == (["README.md", "onnx/x.onnx"], 2)
    names = sorted(p.name for p in folder.iterdir())
    assert sorted(info["files"]) == names
    for name, key in info["files"].items():
        assert stored(settings, key).read_bytes() == (folder / name).read_bytes()
    assert len({stored(settings, key).parent for key in info["files"].values()}) == 1


def test_files_at_the_archive_root_are_accepted(client: TestClient, folder: Path) -> None:
    body = upload_checked(client, "tiny.zip", zip_folder(folder, top=None), "teacher")
    assert body["status"] == "ready", body
    assert "config.json" in body["info"]["files"]


@pytest.mark.parametrize(
    "name", ["model/pytorch_model.bin", "model/training_args.bin", "model/weights.pt", "x.ckpt"]
)
def test_pickles_are_refused(client: TestClient, folder: Path, name: str) -> None:
    archive = zip_folder(folder, extra={name: b"\x80\x04pickle"})
    refused(upload_checked(client, "tiny.zip", archive, "teacher"), repr(name), "pickle")


def test_code_is_refused(client: TestClient, folder: Path) -> None:
    archive = zip_folder(folder, extra={"model/modeling_evil.py": b"import os"})
    refused(
        upload_checked(client, "tiny.zip", archive, "teacher"),
        "'model/modeling_evil.py'",
        "remote code is never run",
    )


def test_auto_map_is_refused(client: TestClient, saved: Path, folder: Path) -> None:
    edit_config(folder, auto_map={"AutoModelForSequenceClassification": "evil.Model"})
    refused(
        upload_checked(client, "tiny.zip", zip_folder(folder), "teacher"),
        "'model/config.json'",
        "auto_map",
    )
    shutil.copy(saved / "config.json", folder / "config.json")
    tokenizer_config = folder / "tokenizer_config.json"
    tokenizer_config.write_text(
        json.dumps({**json.loads(tokenizer_config.read_text()), "auto_map": {"x": "y"}})
    )
    refused(
        upload_checked(client, "tiny.zip", zip_folder(folder), "teacher"),
        "'model/tokenizer_config.json'",
        "auto_map",
    )


@pytest.mark.parametrize(
    ("leave_out", "needle"),
    [
        ("config.json", "no config.json"),
        (".safetensors", "no *.safetensors weights"),
        ("tokenizer.json", "no tokenizer"),
    ],
)
def test_a_missing_part_is_refused(
    client: TestClient, folder: Path, leave_out: str, needle: str
) -> None:
    archive = zip_folder(folder, leave_out=(leave_out,))
    refused(upload_checked(client, "tiny.zip", archive, "teacher"), needle)


def test_a_base_model_or_a_regression_head_is_refused(client: TestClient, folder: Path) -> None:
    edit_config(folder, architectures=["BertModel"])
    body = upload_checked(client, "tiny.zip", zip_folder(folder), "teacher")
    refused(body, "BertModel", "neither a sequence classifier")
    edit_config(folder, architectures=["BertForSequenceClassification"], problem_type="regression")
    refused(upload_checked(client, "tiny.zip", zip_folder(folder), "teacher"), "'regression'")


def test_members_leaving_the_folder_or_bad_weights_are_refused(
    client: TestClient, folder: Path
) -> None:
    archive = zip_folder(folder, extra={"../evil.json": b"{}"})
    refused(upload_checked(client, "tiny.zip", archive, "teacher"), "'../evil.json'")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    refused(
        upload_checked(client, "tiny.zip", zip_folder(folder), "teacher"),
        "'model/model.safetensors'",
    )


def test_a_job_records_the_model_and_refuses_data_it_cannot_label(
    client: TestClient, settings: Settings, folder: Path
) -> None:
    body = upload_checked(client, "tiny.zip", zip_folder(folder), "teacher")
    teacher = {"source": "hf", "file_id": body["id"]}
    values = dataset(client)  # numbers, not texts
    response = client.post(
        "/v1/jobs", json=job(dataset={"name": f"file:{values}"}, teacher=teacher)
    )
    assert_422(response, "teacher.file_id", "labels texts")
    # A sequence classifier is a module the worker runs: it may label online.
    online = job(teacher=teacher, distill={"soft_labels": "online"})
    assert client.post("/v1/jobs", json=online).status_code == 201
    response = client.post(
        "/v1/jobs", json=job(teacher=teacher)
    )  # a builtin: checked by the worker
    assert response.status_code == 201, response.text
    with session_scope(settings.database_url) as session:
        used = session.scalars(select(JobFile).where(JobFile.job_id == response.json()["id"]))
        assert [(f.file_id, f.role) for f in used] == [(body["id"], "teacher")]


@pytest.fixture(scope="module")
def causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("causal") / "model", "llama")


def test_a_causal_lm_folder_is_a_language_model_teacher(
    client: TestClient, causal_lm: Path, tmp_path: Path
) -> None:
    body = upload_checked(client, "llama.zip", zip_folder(causal_lm), "teacher")
    assert body["status"] == "ready", body
    info = body["info"]
    assert info["task"] == "language_model" and info["model_type"] == "llama"
    assert info["architectures"] == ["LlamaForCausalLM"]
    assert (info["vocab_size"], info["layers"], info["context_length"]) == (320, 4, 128)
    assert info["tokenizer"] == ["tokenizer.json"]
    # A classification job cannot name it; a language-model job with a student made from it can.
    teacher = {"source": "hf", "file_id": body["id"]}
    response = client.post("/v1/jobs", json=job(teacher=teacher))
    assert_422(response, "teacher.file_id", "is a causal LM, which serves 'language_model' jobs")
    lm = {
        "task": "language_model",
        "dataset": {"name": "pystdlib"},
        "teacher": teacher,
        "student": {"source": "from_teacher", "layers": [0, 2]},
    }
    response = client.post("/v1/jobs", json=lm)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["export"] == ["safetensors", "onnx", "hf"]
    assert spec["distill"]["soft_label_top_k"] == 16
    # teacher.train fine-tunes sequence classifiers only.
    trained = {**lm, "teacher": {**teacher, "train": {"epochs": 1}}}
    response = client.post("/v1/jobs", json=trained)
    assert_422(response, "teacher.train", "fine-tunes sequence classifiers only")


def test_a_causal_lm_with_remote_code_or_pickled_weights_is_refused(
    client: TestClient, causal_lm: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(causal_lm, tmp_path / "evil"))
    edit_config(folder, auto_map={"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"})
    refused(upload_checked(client, "evil.zip", zip_folder(folder), "teacher"), "auto_map")
    archive = zip_folder(causal_lm, extra={"model/modeling_evil.py": b"import os"})
    refused(upload_checked(client, "evil.zip", archive, "teacher"), "is code")
    archive = zip_folder(causal_lm, extra={"model/pytorch_model.bin": b"\x80\x04pickle"})
    refused(upload_checked(client, "evil.zip", archive, "teacher"), "pickle")
