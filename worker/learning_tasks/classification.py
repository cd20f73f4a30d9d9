"""`classification`: one label per example; logits over the dataset's classes.

Inputs are numbers (normalised inside the model by the data's statistics) or, for a text
dataset, UTF-8 bytes padded with byte 0 that a byte-level model (catalog `inputs: bytes`)
reads as token ids: the exported graph then takes uint8 `[batch, max_length]`.
"""

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from app.files.text_examples import PAD
from distillery.types.catalog import MODELS as CATALOG_MODELS
from worker import export
from worker.data import PreparedData
from worker.data.prepare import Examples
from worker.learning_tasks.registry import TASKS, Normalisation, SetSize, Task
from worker.models import MODELS, InputMismatch, Tokens, build_model
from worker.train import predict_chunks

TEXT = "text"
# Distillation examples (train + transfer) per class under which the diagnosis calls the set too
# small: a heuristic. Hinton et al. 2015 distil on the full training set or more (a transfer
# set); with a few dozen examples a class the teacher's soft labels have little to add to the
# labels themselves.
ENOUGH_PER_CLASS = 100


def logits_accuracy_and_loss(
    chunks: Iterable[torch.Tensor], y: torch.Tensor
) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of logits given batch by batch, in the order of `y`."""
    correct, loss, seen = 0, 0.0, 0
    for logits in chunks:
        labels = y[seen : seen + len(logits)]
        loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == labels).sum())
        seen += len(logits)
    if seen != len(y):
        raise ValueError(f"{seen} logits for {len(y)} labels")
    return correct / max(seen, 1), loss / max(seen, 1)


def accuracy_and_loss(
    model: nn.Module, x: torch.Tensor | Examples, y: torch.Tensor
) -> tuple[float, float]:
    return logits_accuracy_and_loss(predict_chunks(model, x), y)


def _byte_models() -> list[str]:
    return [
        name
        for name, entry in CATALOG_MODELS.items()
        if entry.inputs == "bytes" and "classification" in entry.tasks
    ]


@TASKS.register("classification")
class Classification(Task):
    name = "classification"
    selection = ("accuracy", True)
    metrics = ("accuracy", "loss")

    def build_model(
        self,
        arch: str,
        params: dict[str, Any],
        data: PreparedData,
        normalisation: Normalisation | None = None,
    ) -> nn.Module:
        reads_bytes = CATALOG_MODELS[arch].inputs == "bytes"
        if reads_bytes != (data.modality == TEXT):
            if reads_bytes:
                raise InputMismatch(f"{arch} reads text; this dataset's inputs are numbers")
            raise InputMismatch(
                f"{arch} reads numbers; this dataset is text: use " + " or ".join(_byte_models())
            )
        if reads_bytes:
            typed = CATALOG_MODELS[arch].params.model_validate(params)
            return Tokens(MODELS.get(arch)(typed, data.input_shape, data.num_classes))
        mean, std = normalisation if normalisation is not None else (data.mean, data.std)
        return build_model(arch, params, data.input_shape, data.num_classes, mean, std)

    def hard_label_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if mix is None:
            return nn.functional.cross_entropy(logits, labels)
        partner_labels, lam = mix
        own = nn.functional.cross_entropy(logits, labels, reduction="none")
        other = nn.functional.cross_entropy(logits, partner_labels, reduction="none")
        return (lam * own + (1 - lam) * other).mean()

    def measure_logits(self, chunks: Iterable[torch.Tensor], y: torch.Tensor) -> dict[str, float]:
        accuracy, loss = logits_accuracy_and_loss(chunks, y)
        return {"accuracy": accuracy, "loss": loss}

    def compare(
        self, teacher: dict[str, Any], student: dict[str, Any], baseline: dict[str, Any] | None
    ) -> dict[str, Any]:
        s, t = student["test_accuracy"], teacher.get("test_accuracy")
        return {
            "accuracy_retention": round(s / max(t, 1e-9), 4) if t is not None else None,
            "kd_gain": round(s - baseline["test_accuracy"], 4) if baseline else None,
        }

    def distill_set_size(self, data: PreparedData) -> SetSize:
        per_class = len(data.distill) / max(data.num_classes, 1)
        return SetSize(per_class, "examples per class", ENOUGH_PER_CLASS)

    def example(self, data: PreparedData, n: int) -> torch.Tensor:
        head = data.test.head(n)
        return head.to(torch.uint8) if data.modality == TEXT else head

    def preprocessing(self, data: PreparedData) -> dict[str, Any]:
        if data.modality == TEXT:
            return {
                "baked_into_graph": True,
                "encoding": "utf-8",
                "max_length": data.input_shape[0],
                "padding_byte": PAD,
                "note": "pass each text as its UTF-8 bytes, cut to max_length and padded "
                "after the text with byte 0, as uint8 [batch, max_length]; the graph embeds "
                "the bytes and masks the padding",
            }
        return {
            "baked_into_graph": True,
            "normalization": {"mean": data.mean.tolist(), "std": data.std.tolist()},
            "note": "pass raw inputs in the dataset's own format, as float32 (images: pixel "
            "values 0..255); the graph normalises them",
        }

    def signature(self, data: PreparedData) -> dict[str, Any]:
        return {
            "input": {
                "name": export.INPUT_NAME,
                "shape": [None, *data.input_shape],
                "dtype": "uint8" if data.modality == TEXT else "float32",
            },
            "output": {"name": export.OUTPUT_NAME, "shape": [None, data.num_classes]},
        }
