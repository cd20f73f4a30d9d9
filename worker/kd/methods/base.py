"""What every distillation method is: the registry and the base class.

A method is one file in this package (found by discovery) that subclasses `Method` and
registers it under its catalog name (distillery.types.catalog.methods holds its parameter
schema: the method's second file). The method declares the layers it reads (`student_layers`,
`teacher_layers`: the catalog's layer names), creates its learnable parts in `build` once it
has seen the features' shapes (they are submodules, so they train with the student and go into
its checkpoint), and computes the loss of a batch.
"""

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from worker.kd.losses import kd_loss
from worker.registry import Registry
from worker.softlabels import TeacherLogits, dense


@dataclass
class Outputs:
    """One model's outputs for a batch: logits, and the features of the layers it was asked for."""

    # The logits as they came: a tensor, or for a teacher read from a top-k store its rows.
    given: TeacherLogits
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def logits(self) -> torch.Tensor:
        """The (rows, classes) logits (a top-k teacher's are built in full on each use: the
        KD term reads `given` instead)."""
        return dense(self.given)


class Method(nn.Module):
    # Whether the loss reads the teacher's logits (a method that learns from the teacher's
    # generated text does not: no soft labels are stored and the teacher does not run online).
    reads_teacher_logits: bool = True

    def __init__(self, params: dict[str, Any], distill: dict[str, Any]) -> None:
        """`params` is the resolved `distill.method_params`, `distill` the resolved `distill`."""
        super().__init__()
        self.method_params = params
        self.kd_weight: float = distill["kd_weight"]
        self.ce_weight: float = distill["ce_weight"]

    def layer_pairs(self) -> list[dict[str, str]]:
        """The (student, teacher) layer pairs the method compares; none by default."""
        return []

    def student_layers(self) -> list[str]:
        return list(dict.fromkeys(p["student"] for p in self.layer_pairs()))

    def teacher_layers(self) -> list[str]:
        return list(dict.fromkeys(p["teacher"] for p in self.layer_pairs()))

    def build(self, student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> None:
        """Create the learnable parts from one batch's features (only their shapes matter)."""

    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        raise NotImplementedError

    def teacher_text(self) -> dict[str, Any] | None:
        """How the teacher rewrites the distillation examples before distillation
        (`prompt_bytes`, `sample_temperature`; the teacher_text stage), or None."""
        return None

    def hint_epochs(self) -> int:
        """Epochs of a `hints` stage before distillation (none by default)."""
        return 0

    def hint_loss(self, student: Outputs, teacher: Outputs) -> torch.Tensor:
        """What the `hints` stage minimises: the method's feature terms alone."""
        raise NotImplementedError(f"{type(self).__name__} has no hint stage")

    def hinton(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """The KD + CE terms of DESIGN section 5, with the job's kd_weight and ce_weight."""
        return kd_loss(
            student.logits,
            teacher.given,
            labels,
            temperature=temperature,
            kd_weight=self.kd_weight,
            ce_weight=self.ce_weight,
        )


METHODS: Registry[type[Method]] = Registry("distillation method")


def build_method(distill: dict[str, Any]) -> Method:
    """The method a resolved `distill` spec names."""
    return METHODS.get(distill["method"])(distill["method_params"], distill)
