"""`cnn1d` (the MNIST-1D reference ConvNet) and `cnn2d` (conv blocks for small images)."""

import torch
from torch import nn

from distillery.types.catalog.models import Cnn1dParams, Cnn2dParams
from worker.models.registry import MODELS, InputMismatch


class Cnn1d(nn.Module):
    """Three conv layers (kernel 5/3/3, stride 2) and a linear head, as in MNIST-1D's ConvBase."""

    def __init__(self, in_channels: int, length: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv1d(in_channels, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        # Modules (no parameters, so the weights' names stay as they were) whose outputs are the
        # features distillation methods tap: conv1..conv3 after their ReLU.
        self.act1, self.act2, self.act3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        out_length = length
        for kernel in (5, 3, 3):
            out_length = (out_length + 2 - kernel) // 2 + 1
        if out_length < 1:
            raise InputMismatch(f"cnn1d needs sequences of at least 5 steps, got {length}")
        self.head = nn.Linear(channels * out_length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.act3(self.conv3(x))
        return self.head(x.flatten(1))

    def feature_modules(self) -> dict[str, nn.Module]:
        return {"conv1": self.act1, "conv2": self.act2, "conv3": self.act3}


@MODELS.register("cnn1d")
def build_cnn1d(params: Cnn1dParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) == 1:
        in_channels, length = 1, input_shape[0]
    elif len(input_shape) == 2:
        in_channels, length = input_shape
    else:
        raise InputMismatch(
            f"cnn1d takes (length,) or (channels, length) inputs, got {input_shape}"
        )
    return Cnn1d(in_channels, length, params.channels, num_classes)


class Cnn2d(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], num_classes: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_channels
        for out in channels:
            blocks += [
                nn.Conv2d(width, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            width = out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.head(self.pool(self.features(x)).flatten(1))

    def feature_modules(self) -> dict[str, nn.Module]:
        """block1..blockN: each conv block's output, after its pooling."""
        pools = [m for m in self.features if isinstance(m, nn.MaxPool2d)]
        return {f"block{i + 1}": pool for i, pool in enumerate(pools)}


@MODELS.register("cnn2d")
def build_cnn2d(params: Cnn2dParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) == 2:
        in_channels = 1
    elif len(input_shape) == 3:
        in_channels = input_shape[0]
    else:
        raise InputMismatch(
            f"cnn2d takes (height, width) or (channels, height, width) inputs, got {input_shape}"
        )
    return Cnn2d(in_channels, params.channels, num_classes)
