"""`at`: activation-based attention transfer (Zagoruyko & Komodakis, ICLR 2017).

The attention map of a feature map A (channels C, positions j) is Q_j = mean_c A_cj^2, flattened
and L2-normalised. With beta = at_weight, following the authors' code (beta = 1000 there):

    L = kd + ce (DESIGN section 5) + beta / 2 * sum over pairs of mean_j (Q_s,j - Q_t,j)^2

averaged over the batch. Flat features (batch, units) count each unit as a position. Maps of
different spatial sizes are average-pooled to the smaller before the attention is taken; flat
features of different widths are pooled the same way.
"""

import torch
import torch.nn.functional as F

from worker.kd.methods.base import METHODS, Method, Outputs
from worker.kd.methods.features import common_positions, pool_to


def attention(x: torch.Tensor) -> torch.Tensor:
    """(batch, positions) L2-normalised attention map of a feature map."""
    energy = x.pow(2).mean(1) if x.dim() > 2 else x.pow(2)
    return F.normalize(energy.flatten(1), dim=1)


def at_term(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    teacher = teacher.to(student.dtype)
    if student.dim() == 2 and teacher.dim() == 2:
        # Flat features: the units are the positions (pooled over one "channel").
        student, teacher = student[:, None], teacher[:, None]
        width = min(student.shape[2], teacher.shape[2])
        s, t = pool_to(student, (width,))[:, 0], pool_to(teacher, (width,))[:, 0]
        return (attention(s) - attention(t)).pow(2).mean()
    size = common_positions(student, teacher)
    if size is None:
        raise ValueError(
            f"cannot align a student feature of shape {tuple(student.shape[1:])} with a "
            f"teacher feature of shape {tuple(teacher.shape[1:])}"
        )
    return (attention(pool_to(student, size)) - attention(pool_to(teacher, size))).pow(2).mean()


@METHODS.register("at")
class AttentionTransfer(Method):
    def layer_pairs(self) -> list[dict[str, str]]:
        return list(self.method_params["pairs"])

    def build(self, student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> None:
        for p in self.layer_pairs():
            at_term(student[p["student"]], teacher[p["teacher"]])  # fails early if unaligned

    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        terms = [
            at_term(student.features[p["student"]], teacher.features[p["teacher"]])
            for p in self.layer_pairs()
        ]
        beta = self.method_params["at_weight"]
        return (
            self.hinton(student, teacher, labels, temperature) + beta / 2 * torch.stack(terms).sum()
        )
