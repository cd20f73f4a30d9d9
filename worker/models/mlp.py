"""`mlp`: a multi-layer perceptron over the flattened input."""

import math
from typing import Any

from torch import nn

from worker.models.registry import MODELS


@MODELS.register("mlp")
def build_mlp(params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for hidden in params.get("hidden", [128]):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if params.get("dropout", 0.0) > 0:
            layers.append(nn.Dropout(params["dropout"]))
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
