"""What the two PyTorch teachers (`train`, `weights`) share: a zoo model in eval mode."""

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from app.catalog import SpecError
from worker import export
from worker.models import InputMismatch, build_model, count_params
from worker.teachers.registry import TeacherSource
from worker.train import accuracy_and_loss, predict_chunks


class TorchTeacher(TeacherSource):
    module: nn.Module

    def build(self, mean: torch.Tensor | None, std: torch.Tensor | None) -> nn.Module:
        """The zoo model, seeded like the student (see Pipeline.validate)."""
        data = self.data
        torch.manual_seed(self.context.seed)
        try:
            model = build_model(
                self.spec["arch"],
                self.spec["params"],
                data.input_shape,
                data.num_classes,
                mean,
                std,
            )
        except InputMismatch as exc:
            message = f"{exc} (dataset {self.context.dataset_name})"
            raise SpecError("teacher.arch", message) from None
        return model.to(self.context.device)

    def weights_bytes(self) -> int | None:
        raise NotImplementedError

    def distill_logits(self) -> Iterator[torch.Tensor]:
        return predict_chunks(self.module, self.data.distill)

    def evaluate(self) -> dict[str, Any]:
        data = self.data
        accuracy, loss = accuracy_and_loss(self.module, data.test, data.y_test)
        latency = export.cpu_latency_ms(self.module, data.test.head(1))
        self.module.to(self.context.device)
        return {
            "params": count_params(self.module),
            "bytes": self.weights_bytes(),
            "test_accuracy": round(accuracy, 4),
            "test_loss": round(loss, 4),
            "latency_ms_cpu": round(latency, 4),
        }
