"""`resnet_cifar`: the CIFAR ResNets of He et al. 2016 (depth 6n+2; width 64 gives the x4 ones)."""

import torch
from torch import nn

from distillery.types.catalog.models import ResnetCifarParams
from worker.models.registry import MODELS, InputMismatch


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        in_planes = width
        for stage, planes in enumerate((width, width * 2, width * 4)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.blocks_per_stage = blocks_per_stage
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x))).flatten(1))

    def feature_modules(self) -> dict[str, nn.Module]:
        """stem, then stage1..stage3: the output of each stage's last block."""
        n = self.blocks_per_stage
        last = {f"stage{s + 1}": self.stages[(s + 1) * n - 1] for s in range(3)}
        return {"stem": self.stem, **last}


@MODELS.register("resnet_cifar")
def build_resnet_cifar(
    params: ResnetCifarParams, input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    if len(input_shape) != 3:
        raise InputMismatch(
            f"resnet_cifar takes (channels, height, width) inputs, got {input_shape}"
        )
    return ResNetCifar(params.depth, params.width, input_shape[0], num_classes)
