"""The classification task's hard-label loss, plain and for blended views."""

import torch
import torch.nn.functional as F

from worker.learning_tasks import task_for


def test_blended_views_take_each_label_by_its_share() -> None:
    task = task_for({"task": "classification"})
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64)
    labels, partners = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 1, 3, 0, 2])
    lam = torch.tensor([1.0, 0.5, 0.25, 0.0, 0.9], dtype=torch.float64)
    expected = (
        sum(
            lam[i] * F.cross_entropy(logits[i : i + 1], labels[i : i + 1])
            + (1 - lam[i]) * F.cross_entropy(logits[i : i + 1], partners[i : i + 1])
            for i in range(5)
        )
        / 5
    )
    assert torch.allclose(task.hard_label_loss(logits, labels, (partners, lam)), expected)
    assert torch.allclose(task.hard_label_loss(logits, labels), F.cross_entropy(logits, labels))


def test_specs_from_before_tasks_are_classification() -> None:
    assert task_for({}).name == "classification"
