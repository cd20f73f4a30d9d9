"""What a learning task owns: what differs between, say, classification and language modelling.

The task builds the model for the data (its inputs and outputs), gives the hard-label loss the
teacher and the baseline train on, measures a model (the metrics validation and evaluation
record), and states the exported model's signature. Stages call the task instead of asking
which task they are in.
"""

from typing import Any, ClassVar

import torch
from torch import nn

from worker.data import PreparedData
from worker.data.prepare import Examples
from worker.registry import Registry


class Task:
    name: ClassVar[str]

    def build_model(self, arch: str, params: dict[str, Any], data: PreparedData) -> nn.Module:
        """A zoo model that takes the data's raw inputs (normalisation inside)."""
        raise NotImplementedError

    def hard_label_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The loss on hard labels; `mix` = (the partners' labels, each view's share of its own
        example) for views that blend two examples."""
        raise NotImplementedError

    def measure(
        self, model: nn.Module, x: torch.Tensor | Examples, y: torch.Tensor
    ) -> dict[str, float]:
        """The task's metrics of `model` on (x, y), e.g. {"accuracy", "loss"}."""
        raise NotImplementedError

    def signature(self, data: PreparedData) -> dict[str, Any]:
        """The exported model's {"input": {...}, "output": {...}} for the manifest."""
        raise NotImplementedError


TASKS: Registry[type[Task]] = Registry("task")


def task_for(spec: dict[str, Any]) -> Task:
    """The task a resolved spec names (specs from before tasks existed are classification)."""
    return TASKS.get(spec.get("task", "classification"))()
