"""Model registry and the wrapper that bakes input normalisation into every model."""

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from distillery.types import catalog
from worker.registry import Registry

# A factory builds the bare network from (params, input_shape, num_classes); the params are
# the arch's catalog parameter object (distillery.types.catalog.models), defaults filled in
# there and only there.
ModelFactory = Callable[[Any, tuple[int, ...], int], nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")


class InputMismatch(ValueError):
    """The dataset's inputs do not fit what the architecture takes."""


class Normalized(nn.Module):
    """`net((x - mean) / std)`: exported graphs take the dataset's raw inputs."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class Tokens(nn.Module):
    """`net(tokens)`: a model over token ids takes them as they are (no normalisation); the
    wrapper keeps its weights' names (`net.`) those of every zoo model."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)


def build_model(
    arch: str,
    params: dict[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> Normalized:
    factory = MODELS.get(arch)
    typed = catalog.MODELS[arch].params.model_validate(params)
    net = factory(typed, tuple(input_shape), num_classes)
    mean = torch.zeros(()) if mean is None else mean
    std = torch.ones(()) if std is None else std
    return Normalized(net, mean, std)


def feature_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The named layers of a zoo model whose outputs distillation methods may tap, in forward
    order (the catalog lists the same names: distillery.types.catalog.models.model_layers)."""
    net = model.net if isinstance(model, (Normalized, Tokens)) else model
    named = getattr(net, "feature_modules", None)
    return dict(named()) if named is not None else {}


def count_params(model: nn.Module) -> int:
    """Trainable parameters (normalisation buffers are not parameters)."""
    return sum(p.numel() for p in model.parameters())
