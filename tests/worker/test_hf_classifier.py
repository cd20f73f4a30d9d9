"""A Hugging Face sequence classifier as a pipeline model: byte rows in (each decoded and
tokenized by its own tokenizer), the classifier's logits out, as transformers gives them for
each text; its ONNX token graph answers the same for the same tokens; the taps keep the last
hidden states and which tokens are real."""

from pathlib import Path

import numpy as np
import torch

from app.files.text_examples import encode
from tests.worker.teachers.tiny_hf import save_tiny_classifier
from worker import export, onnx_runtime
from worker.hf_classifier import TextClassifier
from worker.kd import FeatureTaps

TEXTS = ["the cat sat on the mat", "good movie", "", "a plot that is far too long to keep"]


def classifier(tmp_path: Path) -> TextClassifier:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = save_tiny_classifier(tmp_path / "bert", layers=2)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    return TextClassifier(model, AutoTokenizer.from_pretrained(folder), max_tokens=6).eval()


def test_byte_rows_are_classified_as_transformers_classifies_each_text(tmp_path: Path) -> None:
    model = classifier(tmp_path)
    rows = torch.from_numpy(encode(TEXTS, 24)[0].astype(np.float32))
    with torch.no_grad(), FeatureTaps(model, ["hidden", "attention_mask"]) as taps:
        logits = model(rows)
        features = taps.take()
    for i, row in enumerate(encode(TEXTS, 24)[0]):
        text = bytes(row).split(b"\0")[0].decode()
        alone = model.tokenizer(text, truncation=True, max_length=6, return_tensors="pt")
        with torch.no_grad():
            expected = model.hf(**alone).logits[0]
        assert torch.allclose(logits[i], expected, atol=1e-5), (text, logits[i], expected)
    mask = features["attention_mask"]
    assert mask.shape == features["hidden"].shape[:2] and mask.shape[1] <= 6
    assert mask.sum(1).tolist()[2] == 2  # the empty text: [CLS] [SEP]


def test_the_token_graph_answers_the_model_for_the_same_tokens(tmp_path: Path) -> None:
    model = classifier(tmp_path)
    rows = torch.from_numpy(encode(TEXTS, 24)[0].astype(np.float32))
    path = tmp_path / "model.onnx"
    export.export_onnx(model, rows[:2], path)
    graph = onnx_runtime.session(path)
    assert [i.name for i in graph.get_inputs()] == ["input_ids", "attention_mask"]
    assert export.onnx_max_abs_diff(model, path, rows) < 1e-4
    feed = onnx_runtime.feed_for(model)
    assert feed is not None and onnx_runtime.feed_for(torch.nn.Linear(2, 2)) is None
    assert set(feed(rows)) == {"input_ids", "attention_mask"}
