"""What one training step is given: a batch's example indices and what names their views."""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    """One training step's examples: their indices, and what names their views (the epoch,
    0-based, and each example's position in that epoch's order, which key the augmentation and
    the stored soft labels of augmented views); `temperature` is the epoch's T (distillation)."""

    index: torch.Tensor
    epoch: int
    positions: torch.Tensor
    temperature: float | None
    # The epoch's whole order (example indices by position): mixing augmentations pair each
    # example with the one at the next position.
    order: torch.Tensor | None = None

    def partners(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions, example indices) of each example's partner: the next position in the
        epoch's order, the last wrapping round to the first."""
        assert self.order is not None, "the batch was made without its epoch's order"
        positions = (self.positions + 1) % len(self.order)
        return positions, self.order[positions]
