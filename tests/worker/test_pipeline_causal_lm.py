"""A `language_model` job with a Hugging Face causal LM teacher, end to end in the worker: the
corpus cut into the teacher's tokens, its logits stored once per token as top-k, a student made
from the teacher's own layers (and one from its config), distilled and against the same
initialisation trained on next-token CE alone, and the student back as a save_pretrained folder
that transformers loads offline and whose held-out loss is the one the report states."""

import io
import math
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from app.models import JobStatus
from app.settings import Settings
from app.store.base import artifact_key
from app.store.local import LocalStore
from tests.worker.teachers.tiny_causal_lm import save_tiny_causal_lm
from tests.worker.teachers.tiny_gguf import save_tiny_gguf
from tests.worker.teachers.tiny_hf import add_hf_teacher, zip_folder
from tests.worker.test_pipeline import load, submit
from worker import lifecycle
from worker.causal_lm.loading import load_folder
from worker.causal_lm.vocabulary import HfVocabulary
from worker.data.text import stdlib_documents, windows

CONTEXT = 32
MAX_BYTES = 30_000


def lm_spec(
    file_id: str, student: dict[str, Any], source: str = "hf", **changes: Any
) -> dict[str, Any]:
    return {
        "task": "language_model",
        "dataset": {"name": "pystdlib", "options": {"context": CONTEXT, "max_bytes": MAX_BYTES}},
        "teacher": {"source": source, "file_id": file_id},
        "student": student,
        "distill": {"epochs": 1, "batch_size": 16, "optimizer": "adamw", "lr": 0.003},
        **changes,
    }


def held_out_loss(folder: Path, settings: Settings) -> float:
    """Mean next-token CE over the test windows, computed from the downloaded folder alone:
    the corpus cut by the published split rule with the folder's own tokenizer."""
    lm = load_folder(folder)
    vocabulary = HfVocabulary(lm.tokenizer, lm.model.config.vocab_size, folder.name)
    tokens = vocabulary.encode(stdlib_documents(MAX_BYTES))
    _, _, x_test, y_test = windows(tokens, CONTEXT)
    with torch.no_grad():
        logits = lm.model(input_ids=torch.from_numpy(x_test.astype("int64"))).logits
    return float(
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.from_numpy(y_test).flatten())
    )


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_a_student_from_the_teachers_layers_comes_back_as_a_folder_transformers_loads(
    sqlite_settings: Settings, tmp_path: Path, family: str
) -> None:
    folder = save_tiny_causal_lm(tmp_path / "teacher", family)
    file_id = add_hf_teacher(sqlite_settings, tmp_path, zip_folder(folder))
    job_id = submit(sqlite_settings, lm_spec(file_id, {"source": "from_teacher", "layers": [0, 3]}))
    # One family estimates itself too (a dry run of every kind of work: half a minute).
    estimates = family == "llama"
    lifecycle.run(job_id, sqlite_settings.model_copy(update={"job_estimates": estimates}))
    job, events, _, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    report = job.result
    messages = [e.message for e in events]
    assert any("top-16" in m and "written to the store" in m for m in messages), messages
    if estimates:  # with eval-sized batches, not 512 vocabulary-wide windows
        assert not any("could not estimate" in m for m in messages), messages
        assert job.cost["estimate"]["wall_seconds"]["cpu"]["total"] > 0
    assert report["student"]["student_source"]["layers"] == [0, 3]
    assert report["baseline"]["params"] == report["student"]["params"]
    assert report["student"]["params"] < report["teacher"]["params"]

    assert_folder_gives_the_report(sqlite_settings, tmp_path, job_id, {a.name for a in artifacts})


def assert_folder_gives_the_report(
    settings: Settings, tmp_path: Path, job_id: str, artifacts: set[str]
) -> None:
    """The downloaded student-hf.zip loads offline and scores the report's held-out loss."""
    job = load(settings, job_id)[0]
    report = job.result
    assert "student-hf.zip" in artifacts, artifacts
    store = LocalStore(settings.artifact_url)
    archive = b"".join(store.open_chunks(artifact_key(job_id, "student-hf.zip")))
    out = tmp_path / "download"
    zipfile.ZipFile(io.BytesIO(archive)).extractall(out)
    student = out / "student"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in student.iterdir()
    }
    loss = held_out_loss(student, settings)
    assert loss == pytest.approx(report["student"]["test_loss"], abs=1e-3)
    assert math.exp(loss) == pytest.approx(report["student"]["test_perplexity"], rel=1e-2)
    assert "student.onnx" in artifacts, artifacts
    onnx_gives_the_folders_logits(store, job_id, student, tmp_path)


def onnx_gives_the_folders_logits(
    store: LocalStore, job_id: str, folder: Path, tmp_path: Path
) -> None:
    """The downloaded student.onnx, at a batch size and length it was not exported with,
    gives the logits the save_pretrained folder does."""
    import onnxruntime

    path = tmp_path / "student.onnx"
    path.write_bytes(b"".join(store.open_chunks(artifact_key(job_id, "student.onnx"))))
    lm = load_folder(folder)
    tokens = torch.randint(0, lm.model.config.vocab_size, (3, 11))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"tokens": tokens.numpy()})
    with torch.no_grad():
        expected = lm.model(input_ids=tokens).logits
    assert got.shape == tuple(expected.shape)
    assert float((torch.from_numpy(got) - expected).abs().max()) < 1e-3


def test_a_gguf_teacher_distils_a_narrowed_student_against_both_baselines_into_a_folder(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = save_tiny_gguf(tmp_path / "teacher.gguf")
    file_id = add_hf_teacher(sqlite_settings, tmp_path, path.read_bytes(), fmt="gguf")
    student = {
        "source": "from_teacher",
        "layers": "every_other",
        **{"intermediate": 40, "heads": 2, "hidden": 24, "random_init_baseline": True},
        "importance": "activation",  # ranked on the first training windows
    }
    spec = lm_spec(file_id, student, source="gguf")
    # Top-16 and 4 samples of each token's tail, read by kd at T = 1.
    spec["distill"].update(temperature=1.0, soft_label_tail_samples=4)
    job_id = submit(sqlite_settings, spec)
    lifecycle.run(job_id, sqlite_settings)
    job, events, metrics, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    messages = [e.message for e in events]
    assert any("top-16 + 4 tail samples" in m for m in messages), messages
    report = job.result
    assert report["teacher"]["source"] == "gguf"
    # The same architecture from random init, trained alone: a second baseline.
    scratch, pruned = report["random_init"], report["baseline"]
    assert scratch["params"] == pruned["params"] == report["student"]["params"]
    assert scratch["test_loss"] != pruned["test_loss"]
    gain = scratch["test_bits_per_byte"] - report["student"]["test_bits_per_byte"]
    assert report["compression"]["kd_gain_vs_random_init"] == pytest.approx(gain, abs=2e-4)
    assert {m.stage for m in metrics} >= {"baseline", "random_init", "distill"}
    assert report["student"]["student_source"]["layers"] == [0, 2]
    assert_folder_gives_the_report(sqlite_settings, tmp_path, job_id, {a.name for a in artifacts})
    assert report["student"]["student_source"]["intermediate"] == 40
    config = (tmp_path / "download" / "student" / "config.json").read_text()
    assert '"intermediate_size": 40' in config
    assert report["student"]["student_source"]["heads"] == 2
    assert '"num_attention_heads": 2' in config
    assert report["student"]["student_source"]["hidden"] == 24
    assert report["student"]["student_source"]["importance"] == "activation"
    assert '"hidden_size": 24' in config
    assert "quantization_config" not in config  # a plain float model, not GGUF-quantised


def test_a_student_from_the_teachers_config_is_narrower_and_random(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    folder = save_tiny_causal_lm(tmp_path / "teacher", "qwen2")
    file_id = add_hf_teacher(sqlite_settings, tmp_path, zip_folder(folder))
    overrides = {"num_hidden_layers": 2, "intermediate_size": 32}
    job_id = submit(sqlite_settings, lm_spec(file_id, {"source": "config", "overrides": overrides}))
    lifecycle.run(job_id, sqlite_settings)
    job, _, _, artifacts = load(sqlite_settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    report = job.result
    assert report["student"]["student_source"]["overrides"] == overrides
    assert report["student"]["params"] < report["teacher"]["params"]
    assert_folder_gives_the_report(sqlite_settings, tmp_path, job_id, {a.name for a in artifacts})
    config = (tmp_path / "download" / "student" / "config.json").read_text()
    assert '"num_hidden_layers": 2' in config and '"intermediate_size": 32' in config
