"""`mlp`: a multi-layer perceptron over the flattened input."""

import math

from torch import nn

from distillery.types.catalog.models import MlpParams
from worker.models.registry import MODELS


class Mlp(nn.Sequential):
    """Flatten, then Linear-ReLU(-Dropout) per hidden layer, then the linear head."""

    def feature_modules(self) -> dict[str, nn.Module]:
        """hidden1..hiddenN: each hidden layer's output, after its ReLU."""
        relus = [m for m in self if isinstance(m, nn.ReLU)]
        return {f"hidden{i + 1}": relu for i, relu in enumerate(relus)}


@MODELS.register("mlp")
def build_mlp(params: MlpParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for hidden in params.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if params.dropout > 0:
            layers.append(nn.Dropout(params.dropout))
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return Mlp(*layers)
