"""What a learning task owns: what differs between, say, classification and language modelling.

The task builds the model for the data (its inputs and outputs), gives the hard-label loss the
teacher and the baseline train on, measures a model (the metrics validation and evaluation
record), and states the exported model's signature. Stages call the task instead of asking
which task they are in.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from worker.data import PreparedData
from worker.data.labels import CLASS_IDS, Labels
from worker.data.prepare import Examples
from worker.registry import Registry
from worker.train import predict_chunks

Normalisation = tuple[torch.Tensor | None, torch.Tensor | None]


@dataclass(frozen=True)
class SetSize:
    """How much a distillation set holds as the report's diagnosis judges it: `amount` in
    `unit`, and `enough`, the amount under which it calls the set too small for distillation
    to pay (worker/diagnosis.py, `transfer_set_too_small`)."""

    amount: float
    unit: str
    enough: float


class Task:
    name: ClassVar[str]
    # Whether exported graphs take sequences of any length up to the model's (dimension 1).
    dynamic_time: ClassVar[bool] = False
    # The validation metric that picks between training runs (the tune stage's candidates),
    # and whether higher is better.
    selection: ClassVar[tuple[str, bool]] = ("loss", False)
    # The metrics `measure` gives, by name: every epoch records them on the validation split
    # (`val_<name>`), the report on the test split (`test_<name>`).
    metrics: ClassVar[tuple[str, ...]] = ("loss",)
    # Examples per forward pass when measuring.
    eval_batch: int = 1024
    # What the task learns: its labels' dtype, the unlabelled mark, the check of a dataset's.
    labels: ClassVar[Labels] = CLASS_IDS

    def build_model(
        self,
        arch: str,
        params: dict[str, Any],
        data: PreparedData,
        normalisation: Normalisation | None = None,
    ) -> nn.Module:
        """A zoo model that takes the data's raw inputs (normalisation inside: the data's
        statistics, or `normalisation` = (mean, std) where given, (None, None) for none)."""
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
        return self.measure_logits(predict_chunks(model, x, self.eval_batch), y)

    def measure_logits(self, chunks: Iterable[torch.Tensor], y: torch.Tensor) -> dict[str, float]:
        """The task's metrics (`metrics`, by name) of logits given a batch at a time, in the
        order of `y`: how any teacher is measured, a PyTorch model or not."""
        raise NotImplementedError

    def test_metrics(self, chunks: Iterable[torch.Tensor] | None, y: torch.Tensor) -> dict:
        """The report's `test_<metric>` of each of the task's metrics (None: no test logits)."""
        if chunks is None:
            return {f"test_{name}": None for name in self.metrics}
        values = self.measure_logits(chunks, y)
        return {f"test_{name}": round(values[name], 4) for name in self.metrics}

    def prepared(self, data: PreparedData) -> None:
        """Told the job's data once it is prepared (validate), before anything is measured:
        a task whose metrics depend on it (a vocabulary's bytes per token) keeps what it
        needs."""

    def positions(self, data: PreparedData) -> int:
        """Rows of logits per example (the soft-label store keeps one row per position)."""
        return 1

    def rows(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels as the rows distillation methods compare: one per example here;
        one per position for sequence tasks."""
        return logits, labels

    def example(self, data: PreparedData, n: int) -> torch.Tensor:
        """The first n test examples as the exported model takes them (export, latency)."""
        return data.test.head(n)

    def compare(
        self, teacher: dict[str, Any], student: dict[str, Any], baseline: dict[str, Any] | None
    ) -> dict[str, Any]:
        """What the report's `compression` says of quality: the student against the teacher,
        and `kd_gain`, the distilled student against the baseline (None without one)."""
        raise NotImplementedError

    def distill_set_size(self, data: PreparedData) -> SetSize:
        """The distillation set's size (train + transfer) in the unit that says whether the
        teacher has enough to transfer."""
        raise NotImplementedError

    def epoch_values(self, values: dict[str, float], data: PreparedData) -> dict[str, float]:
        """A training epoch's metrics as recorded: the loop's, plus any the task derives."""
        return values

    def samples(self, models: dict[str, nn.Module], data: PreparedData) -> dict[str, Any]:
        """What the report shows of each model's behaviour beyond its metrics (none here)."""
        return {}

    def preprocessing(self, data: PreparedData) -> dict[str, Any]:
        """What the manifest tells a user to do to inputs before the exported graph."""
        raise NotImplementedError

    def signature(self, data: PreparedData) -> dict[str, Any]:
        """The exported model's {"input": {...}, "output": {...}} for the manifest."""
        raise NotImplementedError


TASKS: Registry[type[Task]] = Registry("task")


def task_for(spec: dict[str, Any]) -> Task:
    """The task a resolved spec names (specs from before tasks existed are classification)."""
    return TASKS.get(spec.get("task", "classification"))()
