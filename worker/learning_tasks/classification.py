"""`classification`: one label per example; logits over the dataset's classes."""

from typing import Any

import torch
from torch import nn

from worker import export
from worker.data import PreparedData
from worker.data.prepare import Examples
from worker.learning_tasks.registry import TASKS, Task
from worker.models import build_model
from worker.train import accuracy_and_loss


@TASKS.register("classification")
class Classification(Task):
    name = "classification"

    def build_model(self, arch: str, params: dict[str, Any], data: PreparedData) -> nn.Module:
        return build_model(arch, params, data.input_shape, data.num_classes, data.mean, data.std)

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

    def signature(self, data: PreparedData) -> dict[str, Any]:
        return {
            "input": {
                "name": export.INPUT_NAME,
                "shape": [None, *data.input_shape],
                "dtype": "float32",
            },
            "output": {"name": export.OUTPUT_NAME, "shape": [None, data.num_classes]},
        }
