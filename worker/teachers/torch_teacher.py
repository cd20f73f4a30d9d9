"""What the two PyTorch teachers (`train`, `weights`) share: a zoo model in eval mode."""

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from distillery.types.catalog import SpecError
from worker import export
from worker.models import InputMismatch, count_params
from worker.teachers.registry import ALL_ROWS, TeacherSource
from worker.train import predict_chunks


class TorchTeacher(TeacherSource):
    module: nn.Module

    def build(self, mean: torch.Tensor | None, std: torch.Tensor | None) -> nn.Module:
        """The zoo model, seeded like the student (see Pipeline.validate)."""
        torch.manual_seed(self.context.seed)
        try:
            model = self.context.task.build_model(
                self.spec["arch"], self.spec["params"], self.data, (mean, std)
            )
        except InputMismatch as exc:
            message = f"{exc} (dataset {self.context.dataset_name})"
            raise SpecError("teacher.arch", message) from None
        return model.to(self.context.device)

    def weights_bytes(self) -> int | None:
        raise NotImplementedError

    def distill_logits(self, rows: slice = ALL_ROWS) -> Iterator[torch.Tensor]:
        return predict_chunks(self.module, self.data.distill.part(rows))

    def val_logits(self) -> Iterator[torch.Tensor]:
        return predict_chunks(self.module, self.data.val, self.context.task.eval_batch)

    def evaluate(self) -> dict[str, Any]:
        data, task = self.data, self.context.task
        measured = task.measure(self.module, data.test, data.y_test)
        latency = export.cpu_latency_ms(self.module, task.example(data, 1))
        self.module.to(self.context.device)
        return {
            "params": count_params(self.module),
            "bytes": self.weights_bytes(),
            **{f"test_{k}": round(v, 4) for k, v in measured.items()},
            "latency_ms_cpu": round(latency, 4),
        }
