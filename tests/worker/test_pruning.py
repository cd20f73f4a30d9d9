"""Structured pruning (worker/pruning.py): every arch the catalog calls prunable comes out with
fewer parameters and the same outputs' shape; the same steps rebuild the same architecture
(how a resumed job finds its pruned student again); the importance criterion decides which
channels go."""

from typing import Any

import pytest
import torch
from torch import nn

from distillery.types.catalog import MODELS
from worker import pruning
from worker.models import build_model, count_params

CASES: dict[str, tuple[dict[str, Any], tuple[int, ...], int]] = {
    "mlp": ({}, (40,), 10),
    "cnn1d": ({}, (1, 40), 10),
    "cnn2d": ({}, (1, 28, 28), 10),
    "resnet_cifar": ({"depth": 8}, (1, 16, 16), 10),
    "text_cnn": ({}, (64,), 2),
}


def example(arch: str, shape: tuple[int, ...]) -> torch.Tensor:
    torch.manual_seed(0)
    if MODELS[arch].inputs == "bytes":
        return torch.randint(1, 256, (2, *shape))
    return torch.randn(2, *shape)


def test_the_cases_are_every_prunable_arch() -> None:
    assert set(CASES) == {name for name, entry in MODELS.items() if entry.prunable}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_a_prunable_arch_meets_a_parameter_target_and_keeps_its_outputs(arch: str) -> None:
    params, shape, classes = CASES[arch]
    torch.manual_seed(0)
    model = build_model(arch, params, shape, classes)
    x = example(arch, shape)
    before = count_params(model)
    result = pruning.prune(model, x, "l2", lambda m: count_params(m) <= 0.5 * before)
    assert result.params_before == before
    assert result.params_after == count_params(model) <= 0.5 * before
    assert model(x).shape == (2, classes)
    assert sum(pruning.channels(model).values()) < sum(
        pruning.channels(build_model(arch, params, shape, classes)).values()
    )

    # The same steps on the same weights: the same architecture.
    torch.manual_seed(0)
    again = build_model(arch, params, shape, classes)
    pruning.prune(again, x, "l2", steps=result.steps)
    assert pruning.channels(again) == pruning.channels(model)
    pairs = zip(again.parameters(), model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def kept_hidden_units(importance: str) -> list[int]:
    """Which of four hidden units survive halving, by the rows of weights left."""
    model = TwoLayers()
    with torch.no_grad():
        # Unit i's weights have norm growing with i, but the output reads only unit 0 and 1.
        model.hidden.weight.copy_(torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0])))
        model.hidden.bias.zero_()
        model.out.weight.zero_()
        model.out.weight[:, :2] = 1.0
    rows = {tuple(row.tolist()): i for i, row in enumerate(model.hidden.weight.detach())}
    x = torch.ones(8, 4)

    def gradients(m: nn.Module) -> None:
        m(x).pow(2).sum().backward()

    pruning.prune(
        model, x, importance, steps=10, gradients=gradients if importance == "taylor" else None
    )
    return sorted(rows[tuple(row.tolist())] for row in model.hidden.weight.detach())


def test_the_importance_criterion_decides_which_channels_go() -> None:
    # Magnitude keeps the largest weights; taylor keeps the units the loss depends on.
    assert kept_hidden_units("l2") == [2, 3]
    assert kept_hidden_units("taylor") == [0, 1]


def test_a_target_that_cannot_be_met_is_refused() -> None:
    model = TwoLayers()
    with pytest.raises(pruning.CannotPrune, match="95%"):
        pruning.prune(model, torch.ones(2, 4), "l1", lambda m: count_params(m) <= 1)
