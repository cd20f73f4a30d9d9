"""Your language model, smaller, as a user gets it over HTTP from a real uvicorn process: upload
a causal LM (a zipped save_pretrained folder, or a GGUF file) and a text corpus, distil a
student made from the teacher's own layers, download the student's folder, load it offline
with AutoModelForCausalLM / AutoTokenizer, generate with it, and score the held-out windows the
published split rule gives: the loss is the report's."""

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from tests.e2e.conftest import Service
from tests.e2e.test_uploads import run_job, upload
from tests.e2e.test_uploads import server as server  # the module's embedded service
from tests.worker.teachers.tiny_causal_lm import save_tiny_causal_lm
from tests.worker.teachers.tiny_gguf import save_tiny_gguf
from tests.worker.teachers.tiny_hf import zip_folder
from worker.data.text import stdlib_documents, windows

CONTEXT = 32
MAX_BYTES = 30_000
DISTILL = {"epochs": 1, "batch_size": 16, "optimizer": "adamw", "lr": 0.003}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .jsonl corpus of documents (modules of the standard library), no labels."""
    path = tmp_path_factory.mktemp("corpus") / "stdlib.jsonl"
    documents = stdlib_documents(MAX_BYTES)
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    return path


def downloaded_student(url: str, job: dict[str, Any], tmp_path: Path) -> Path:
    response = httpx.get(f"{url}/v1/jobs/{job['id']}/artifacts/student-hf.zip", timeout=60)
    assert response.status_code == 200, response.text
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp_path / "download")
    return tmp_path / "download" / "student"


def held_out_loss(folder: Path, documents: list[str]) -> tuple[float, str]:
    """What a user computes with transformers alone: the documents tokenised with the end-of-
    text token after each, cut by the split rule, the mean next-token CE over the test windows;
    and a few generated tokens (KV cache on) to show the model runs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    ids: list[int] = []
    for document in documents:
        ids += tokenizer(document, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    _, _, x_test, y_test = windows(np.array(ids, dtype=np.uint16), CONTEXT)
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(x_test.astype("int64"))).logits
        prompt = tokenizer("def ", return_tensors="pt")
        generated = model.generate(**prompt, max_new_tokens=8, do_sample=False, use_cache=True)
    loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), torch.from_numpy(y_test.astype("int64")).flatten()
    )
    return float(loss), tokenizer.decode(generated[0])


def assert_report_holds(url: str, job: dict[str, Any], loss: float) -> None:
    report = job["result"]
    student = report["student"]
    assert loss == pytest.approx(student["test_loss"], abs=1e-3)
    assert math.exp(loss) == pytest.approx(student["test_perplexity"], rel=1e-2)
    assert student["params"] < report["teacher"]["params"]
    assert report["baseline"]["params"] == student["params"]
    manifest = httpx.get(f"{url}/v1/jobs/{job['id']}/artifacts/manifest.json").json()
    assert "AutoModelForCausalLM" in json.dumps(manifest)


def test_an_hf_folder_teacher_on_the_builtin_corpus(
    server: tuple[str, list[Service]],
    tmp_path: Path,
) -> None:
    url, services = server
    folder = save_tiny_causal_lm(tmp_path / "teacher", "qwen2")
    (tmp_path / "qwen2.zip").write_bytes(zip_folder(folder))
    teacher = upload(url, tmp_path / "qwen2.zip", "teacher")
    assert teacher["info"]["task"] == "language_model"
    spec = {
        "task": "language_model",
        "dataset": {"name": "pystdlib", "options": {"context": CONTEXT, "max_bytes": MAX_BYTES}},
        "teacher": {"source": "hf", "file_id": teacher["id"]},
        "student": {"source": "from_teacher", "layers": [0, 3]},
        "distill": DISTILL,
    }
    job = run_job(url, services, spec)
    student = downloaded_student(url, job, tmp_path)
    loss, text = held_out_loss(student, stdlib_documents(MAX_BYTES))
    assert text.startswith("def ")
    assert_report_holds(url, job, loss)


def test_a_gguf_teacher_on_an_uploaded_corpus(
    server: tuple[str, list[Service]],
    tmp_path: Path,
    corpus: Path,
) -> None:
    url, services = server
    teacher = upload(url, save_tiny_gguf(tmp_path / "tiny.gguf"), "teacher")
    assert teacher["info"]["format"] == "gguf"
    data = upload(url, corpus, "dataset", task="language_model", context=str(CONTEXT))
    spec = {
        "task": "language_model",
        "dataset": {"name": f"file:{data['id']}"},
        "teacher": {"source": "gguf", "file_id": teacher["id"]},
        "student": {"source": "from_teacher", "layers": "every_other"},
        "distill": DISTILL,
    }
    job = run_job(url, services, spec)
    student = downloaded_student(url, job, tmp_path)
    documents = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    loss, _ = held_out_loss(student, documents)
    assert_report_holds(url, job, loss)
