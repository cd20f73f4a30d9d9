"""`jsd`: the generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024), with
M = beta * p_t + (1 - beta) * p_s:

    JSD(beta) = beta * KL(p_t || M) + (1 - beta) * KL(p_s || M)
    L = kd_weight * T^2 * JSD(beta) + ce_weight * CE

beta = 0 is taken as forward KL(p_t || p_s) and beta = 1 as reverse KL(p_s || p_t), the limits
GKD's implementation (TRL's generalized_jsd_loss) uses at the ends (the divergence itself
vanishes there).
"""

import torch

from worker.kd.methods.base import METHODS
from worker.kd.methods.divergences import DivergenceMethod, kl, mixture


@METHODS.register("jsd")
class Jsd(DivergenceMethod):
    def divergence(self, log_student: torch.Tensor, log_teacher: torch.Tensor) -> torch.Tensor:
        beta = float(self.method_params["beta"])
        if beta == 0:
            return kl(log_teacher, log_student)
        if beta == 1:
            return kl(log_student, log_teacher)
        log_m = mixture(log_teacher, log_student, beta)
        return beta * kl(log_teacher, log_m) + (1 - beta) * kl(log_student, log_m)
