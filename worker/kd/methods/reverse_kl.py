"""`reverse_kl`: KL(student || teacher) at temperature T, the mode-seeking direction (MiniLLM,
Gu et al. 2024): the student is pushed to put its mass where the teacher's is, rather than to
cover every byte or class the teacher gives some probability.

    L = kd_weight * T^2 * sum_c p_s(c) (log p_s(c) - log p_t(c)) + ce_weight * CE
"""

import torch

from worker.kd.methods.base import METHODS
from worker.kd.methods.divergences import DivergenceMethod, kl


@METHODS.register("reverse_kl")
class ReverseKl(DivergenceMethod):
    def divergence(self, log_student: torch.Tensor, log_teacher: torch.Tensor) -> torch.Tensor:
        return kl(log_student, log_teacher)
