"""`fitnets`: FitNets hints (Romero et al., ICLR 2015), trained with the KD and CE terms.

For each hint pair a regressor r (a 1x1 convolution, or a linear map for flat features) maps
the student's layer v onto the teacher's layer u:

    L = kd + ce (DESIGN section 5) + hint_weight * mean over pairs of mean((u - r(v))^2)

The paper's 1/2 ||u - r(v)||^2 is averaged over elements here rather than summed, so the
weight does not depend on the layer's size. Where the two layers' spatial sizes differ, both
are average-pooled to the smaller. The regressors train with the student and are saved in its
checkpoint; they are not part of the exported student.

With `hint_epochs` > 0 the job first runs the paper's first stage (worker/stages/hints.py):
the student and the regressors learn the hint term alone, for that many epochs, and
distillation then starts from the student and regressors it left.
"""

import torch
import torch.nn.functional as F
from torch import nn

from worker.kd.methods.base import METHODS, Method, Outputs
from worker.kd.methods.features import common_positions, pool_to


def regressor(student: torch.Tensor, teacher: torch.Tensor) -> nn.Module:
    """A map from the student feature's channels to the teacher's (1x1 conv or linear)."""
    s_channels, t_channels = student.shape[1], teacher.shape[1]
    dims = student.dim() - 2
    module: nn.Module
    if dims == 0:
        module = nn.Linear(s_channels, t_channels)
    else:
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        module = conv(s_channels, t_channels, kernel_size=1)
    return module.to(device=student.device, dtype=student.dtype)


def hint_term(regressed: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    size = common_positions(regressed, teacher)
    if size is None:
        raise ValueError(
            f"cannot align a student feature of shape {tuple(regressed.shape[1:])} with a "
            f"teacher feature of shape {tuple(teacher.shape[1:])}"
        )
    return F.mse_loss(pool_to(regressed, size), pool_to(teacher.to(regressed.dtype), size))


@METHODS.register("fitnets")
class FitNets(Method):
    def layer_pairs(self) -> list[dict[str, str]]:
        return list(self.method_params["hints"])

    def build(self, student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> None:
        self.regressors = nn.ModuleList(
            regressor(student[p["student"]], teacher[p["teacher"]]) for p in self.layer_pairs()
        )
        for r, p in zip(self.regressors, self.layer_pairs(), strict=True):
            # Fail here, at build, on layers that cannot be aligned, not in the first step.
            with torch.no_grad():
                hint_term(r(student[p["student"]]), teacher[p["teacher"]])

    def hint_epochs(self) -> int:
        return int(self.method_params.get("hint_epochs", 0))

    def hint_loss(self, student: Outputs, teacher: Outputs) -> torch.Tensor:
        """The mean over pairs of the hint MSE."""
        hints = [
            hint_term(r(student.features[p["student"]]), teacher.features[p["teacher"]])
            for r, p in zip(self.regressors, self.layer_pairs(), strict=True)
        ]
        return torch.stack(hints).mean()

    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        return self.hinton(student, teacher, labels, temperature) + (
            self.method_params["hint_weight"] * self.hint_loss(student, teacher)
        )
