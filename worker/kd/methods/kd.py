"""`kd`: Hinton et al. 2015 (DESIGN section 5), the default method."""

import torch

from worker.kd.methods.base import METHODS, Method, Outputs


@METHODS.register("kd")
class Kd(Method):
    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        return self.hinton(student, teacher, labels, temperature)
