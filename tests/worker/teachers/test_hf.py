"""The `hf` teacher source: an uploaded Hugging Face sequence classifier labels text examples
(UTF-8 byte rows decoded back to texts) exactly as the model does when run directly, offline.

The data is a stand-in exposing what the source reads (the text dataset upload lands
separately); the whole job with a text dataset file is tested with the pipeline."""

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.files.text_examples import decode, encode
from app.settings import Settings
from distillery.types.catalog import SpecError
from tests.worker.teachers.tiny_hf import (
    add_hf_teacher,
    edit_config,
    save_tiny_classifier,
    save_tiny_decoder_classifier,
    zip_folder,
)
from tests.worker.uploads import add_teacher
from worker.data.prepare import Examples
from worker.hf_classifier import TextClassifier
from worker.learning_tasks.classification import logits_accuracy_and_loss
from worker.teachers import TeacherContext, build_teacher
from worker.teachers.hf import HfTeacher

MAX_LENGTH = 24
TEXTS = [
    "the cat sat on the mat",
    "good movie",
    "bad film",
    "great plot, fun story",
    "awful",
    "The dog was NOT good",
    "café é ü",
    "a movie with a plot that is much longer than the twenty four bytes kept",
    "",
    "dog cat dog cat dog cat dog",
]


@dataclass
class TextData:
    """What HfTeacher reads of PreparedData."""

    distill: Examples
    test: Examples
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    modality: str = "text"


def examples(texts: list[str]) -> Examples:
    rows, _ = encode(texts, MAX_LENGTH)
    return Examples(rows, True, torch.from_numpy(rows.astype(np.float32)))  # type: ignore[arg-type]


def text_data(num_classes: int = 3, modality: str = "text") -> TextData:
    y = torch.from_numpy(np.arange(len(TEXTS)) % num_classes)
    return TextData(
        distill=examples(TEXTS),
        test=examples(TEXTS[::-1]),
        y_test=y,
        num_classes=num_classes,
        input_shape=(MAX_LENGTH,),
        modality=modality,
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("hf") / "model")


def teacher(
    settings: Settings, tmp: Path, file_id: str, data: Any, tenant: str = "default"
) -> HfTeacher:
    source = build_teacher(
        TeacherContext(
            spec={"source": "hf", "file_id": file_id},
            data=data,
            settings=settings,
            device=torch.device("cpu"),
            workdir=tmp,
            seed=0,
            tenant=tenant,
        )
    )
    assert isinstance(source, HfTeacher)
    return source


def direct_logits(folder: Path, texts: list[str]) -> np.ndarray:
    """The model run by transformers directly on each text alone (no padding)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return np.concatenate(
            [model(**tokenizer(text, return_tensors="pt")).logits.numpy() for text in texts]
        )


def test_the_teacher_labels_texts_as_the_model_does_offline(
    sqlite_settings: Settings, tmp_path: Path, saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sqlite_settings
    file_id = add_hf_teacher(settings, tmp_path, zip_folder(saved))
    data = text_data()
    source = teacher(settings, tmp_path, file_id, data)

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the hf teacher reached for the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    source.validate()
    monkeypatch.undo()
    # The classifier is the teacher's module: it reads the byte rows itself.
    assert isinstance(source.module, TextClassifier)
    assert source.preprocessing == "hf-tokenizer-v1"
    assert source.sha256() == source.upload.sha256
    assert source.describe() == {
        "source": "hf",
        "file_id": file_id,
        "model_type": "bert",
        "layers": 1,
        "fine_tuned": False,
    }

    logits = np.concatenate(list(source.distill_logits()))
    assert logits.dtype == np.float32 and logits.shape == (len(TEXTS), 3)
    kept = [decode(row) for row in encode(TEXTS, MAX_LENGTH)[0]]
    assert kept[7] == TEXTS[7][:MAX_LENGTH] and kept[6] == TEXTS[6]
    np.testing.assert_allclose(logits, direct_logits(saved, kept), atol=1e-5)
    assert len({tuple(row) for row in logits.round(5)}) > 5  # the texts are told apart

    result = source.evaluate()
    test_logits = torch.from_numpy(direct_logits(saved, kept[::-1]))
    accuracy, loss = logits_accuracy_and_loss([test_logits], data.y_test)
    assert result["test_accuracy"] == round(accuracy, 4)
    assert result["test_loss"] == pytest.approx(round(loss, 4), abs=2e-4)
    assert result["params"] == sum(p.numel() for p in source.module.hf.parameters())
    assert result["bytes"] == (saved / "model.safetensors").stat().st_size
    assert result["latency_ms_cpu"] > 0


def spec_error(source: HfTeacher) -> SpecError:
    with pytest.raises(SpecError) as info:
        source.validate()
    assert info.value.param == "teacher.file_id"
    return info.value


def test_the_data_must_be_text_with_as_many_classes(
    sqlite_settings: Settings, tmp_path: Path, saved: Path
) -> None:
    file_id = add_hf_teacher(sqlite_settings, tmp_path, zip_folder(saved))
    wrong = spec_error(teacher(sqlite_settings, tmp_path, file_id, text_data(modality="values")))
    assert "hf teachers label text datasets" in wrong.message
    wrong = spec_error(teacher(sqlite_settings, tmp_path, file_id, text_data(num_classes=4)))
    assert wrong.message == "the teacher has 3 labels; the dataset has 4 classes"


def test_other_files_and_models_transformers_cannot_load_are_refused(
    sqlite_settings: Settings, tmp_path: Path, saved: Path
) -> None:
    settings = sqlite_settings
    onnx_file = add_teacher(settings, tmp_path, saved / "config.json", "onnx")
    wrong = spec_error(teacher(settings, tmp_path, onnx_file, text_data()))
    assert "not a Hugging Face model directory" in wrong.message

    file_id = add_hf_teacher(settings, tmp_path, zip_folder(saved))
    wrong = spec_error(teacher(settings, tmp_path, file_id, None, tenant="acme"))
    assert wrong.message == f"no file {file_id!r}"

    folder = Path(shutil.copytree(saved, tmp_path / "unknown"))
    edit_config(folder, model_type="no_such_model")
    file_id = add_hf_teacher(settings, tmp_path, zip_folder(folder))
    wrong = spec_error(teacher(settings, tmp_path, file_id, text_data()))
    assert wrong.message.startswith("transformers cannot load")


def test_a_decoder_classifier_without_a_padding_token_pads_with_its_end_token(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    folder = save_tiny_decoder_classifier(tmp_path / "gpt2")
    file_id = add_hf_teacher(sqlite_settings, tmp_path, zip_folder(folder))
    source = teacher(sqlite_settings, tmp_path, file_id, text_data())
    source.validate()
    logits = np.concatenate(list(source.distill_logits()))
    kept = [decode(row) for row in encode(TEXTS, MAX_LENGTH)[0]]
    written = [i for i, text in enumerate(kept) if text]  # alone, an empty text has no token
    np.testing.assert_allclose(
        logits[written], direct_logits(folder, [kept[i] for i in written]), atol=1e-5
    )
