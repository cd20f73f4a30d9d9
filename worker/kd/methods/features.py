"""Shape helpers for methods that compare intermediate features of two different models."""

import torch
import torch.nn.functional as F


def positions(x: torch.Tensor) -> tuple[int, ...]:
    """The spatial shape of a feature map (batch, channels, *positions); () for (batch, units)."""
    return tuple(x.shape[2:])


def pool_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Average-pool a feature map to the spatial `size` (no-op when it has it already)."""
    if positions(x) == size:
        return x
    if len(size) == 1:
        return F.adaptive_avg_pool1d(x, size)
    if len(size) == 2:
        return F.adaptive_avg_pool2d(x, size)
    return F.adaptive_avg_pool3d(x, (size[0], size[1], size[2]))


def common_positions(a: torch.Tensor, b: torch.Tensor) -> tuple[int, ...] | None:
    """The spatial size both maps pool to (the smaller in each dimension); None when the two do
    not have the same number of spatial dimensions (nothing to align)."""
    if len(positions(a)) != len(positions(b)):
        return None
    return tuple(min(p, q) for p, q in zip(positions(a), positions(b), strict=True))
