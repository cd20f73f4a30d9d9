"""Fake-quantised weights for quantisation-aware distillation, on PyTorch's own fake-quantize
op (torch.ao.quantization, deprecated for removal, is not used): every convolution's and
linear layer's weight is seen by the forward pass as onnxruntime's int8 will store it
(symmetric, per output channel, scale = max |w| / 127, rounded to the grid), while the
gradient passes straight through to the float weight. Training under it moves the weights
where rounding costs least; `bake` then writes the rounded values into the weights, which
onnxruntime's per-channel quantisation then stores without further loss."""

import torch
from torch import nn
from torch.nn.utils import parametrize

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
QMIN, QMAX = -127, 127  # symmetric int8, as onnxruntime's QInt8 weights


class PerChannelInt8(nn.Module):
    """The weight as its int8 round trip, per output channel (axis 0)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().flatten(1).abs().amax(dim=1)
        scale = (flat / QMAX).clamp(min=1e-12).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, QMIN, QMAX)


def fake_quantise(model: nn.Module) -> int:
    """Put the fake quantisation on every convolution's and linear layer's weight; returns
    how many layers have it."""
    count = 0
    for module in model.modules():
        if isinstance(module, LAYERS) and not parametrize.is_parametrized(module, "weight"):
            parametrize.register_parametrization(module, "weight", PerChannelInt8())
            count += 1
    return count


def bake(model: nn.Module) -> None:
    """Remove the fake quantisation, leaving each weight at its rounded value."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
