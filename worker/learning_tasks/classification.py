"""`classification`: one label per example; logits over the dataset's classes."""

from typing import Any

import torch
from torch import nn

from worker import export
from worker.data import PreparedData
from worker.data.prepare import Examples
from worker.learning_tasks.registry import TASKS, Normalisation, Task
from worker.models import build_model
from worker.train import accuracy_and_loss


@TASKS.register("classification")
class Classification(Task):
    name = "classification"

    def build_model(
        self,
        arch: str,
        params: dict[str, Any],
        data: PreparedData,
        normalisation: Normalisation | None = None,
    ) -> nn.Module:
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

    def measure(
        self, model: nn.Module, x: torch.Tensor | Examples, y: torch.Tensor
    ) -> dict[str, float]:
        accuracy, loss = accuracy_and_loss(model, x, y)
        return {"accuracy": accuracy, "loss": loss}

    def compare(
        self, teacher: dict[str, Any], student: dict[str, Any], baseline: dict[str, Any] | None
    ) -> dict[str, Any]:
        s, t = student["test_accuracy"], teacher.get("test_accuracy")
        return {
            "accuracy_retention": round(s / max(t, 1e-9), 4) if t is not None else None,
            "kd_gain": round(s - baseline["test_accuracy"], 4) if baseline else None,
        }

    def preprocessing(self, data: PreparedData) -> dict[str, Any]:
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
                "dtype": "float32",
            },
            "output": {"name": export.OUTPUT_NAME, "shape": [None, data.num_classes]},
        }
