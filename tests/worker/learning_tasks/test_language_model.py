"""The language_model task: per-token losses and metrics, and methods read one row per token."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from worker.kd import Outputs, build_method
from worker.kd.losses import UNLABELLED
from worker.learning_tasks import task_for

TASK = task_for({"task": "language_model"})


class Uniform(nn.Module):
    """Equal logits for every byte: 8 bits per byte, whatever the text."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*tokens.shape, 256) + self.bias


def test_a_model_that_knows_nothing_needs_eight_bits_per_byte() -> None:
    x = torch.randint(0, 256, (70, 12)).float()
    y = torch.randint(0, 256, (70, 12))
    measured = TASK.measure(Uniform(), x, y)
    assert math.isclose(measured["loss"], math.log(256), rel_tol=1e-6)
    assert math.isclose(measured["bits_per_byte"], 8.0, rel_tol=1e-6)
    assert math.isclose(measured["perplexity"], 256.0, rel_tol=1e-5)


def test_masked_positions_contribute_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 256, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 256, (3, 5), generator=g)
    masked = labels.clone()
    masked[:, 3:] = UNLABELLED
    expected = F.cross_entropy(logits[:, :3].reshape(-1, 256), labels[:, :3].reshape(-1))
    assert torch.allclose(TASK.hard_label_loss(logits, masked), expected)


def test_kd_on_tokens_is_hinton_per_token() -> None:
    """Forward KL with T: T^2 x the mean over tokens of KL(p_t || p_s), plus CE per token."""
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 7, 256, generator=g, dtype=torch.float64)
    t = torch.randn(2, 7, 256, generator=g, dtype=torch.float64)
    y = torch.randint(0, 256, (2, 7), generator=g)
    distill = {"method": "kd", "method_params": {}, "kd_weight": 0.9, "ce_weight": 0.1}
    method = build_method(distill)
    s_rows, labels = TASK.rows(s, y)
    t_rows, _ = TASK.rows(t, y)
    ours = method.loss(Outputs(s_rows), Outputs(t_rows), labels, temperature=2.0)
    kl = 0.0
    for b in range(2):
        for i in range(7):
            p_t = torch.softmax(t[b, i] / 2, -1)
            kl += float((p_t * (p_t.log() - torch.log_softmax(s[b, i] / 2, -1))).sum())
    ce = F.cross_entropy(s.reshape(-1, 256), y.reshape(-1)).item()
    assert math.isclose(ours.item(), 0.9 * 4 * kl / 14 + 0.1 * ce, rel_tol=1e-9)
