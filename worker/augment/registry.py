"""What an augmentation is, and the registry of kinds (`dataset.augment.kind`).

An augmentation turns a batch of raw inputs into views, each drawn from counters
(worker/augment/counters.py) keyed by (job seed, epoch, the example's position in the epoch's
order): the same batch always gives the same views. One file per kind registers itself here.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from worker.augment.counters import normal
from worker.data import DatasetMismatch
from worker.registry import Registry


@dataclass(frozen=True)
class ViewKey:
    """Which views a batch is: the job's seed, the epoch (0-based) and each example's position
    in that epoch's order (CPU int64)."""

    seed: int
    epoch: int
    positions: torch.Tensor

    def counters(self) -> np.ndarray:
        return self.positions.cpu().numpy().astype(np.int64)


@dataclass(frozen=True)
class Views:
    """A batch as a training step sees it. With a mixing augmentation, `lam` is each view's
    share of its own example (the rest comes from the example at `partners`)."""

    inputs: torch.Tensor
    lam: torch.Tensor | None = None
    partners: torch.Tensor | None = None


class Augmentation:
    kind: ClassVar[str]

    def __init__(self, spec: dict[str, Any], input_shape: tuple[int, ...], std: torch.Tensor):
        """`spec` is the resolved `dataset.augment`; `std` the data's std (noise scale)."""
        self.spec = spec
        self.input_shape = input_shape
        self.std = std
        self.check()

    def check(self) -> None:
        """Raise DatasetMismatch (param dataset.augment) when the inputs do not suit the kind."""

    def __call__(self, x: torch.Tensor, key: ViewKey) -> torch.Tensor:
        """Each example's own view (no mixing)."""
        raise NotImplementedError

    def mixes(self) -> bool:
        """Whether views mix two examples (then `mix` follows `__call__`)."""
        return False

    def mix(
        self, views: torch.Tensor, partner_views: torch.Tensor, key: ViewKey
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed views, each one's share of its own example)."""
        raise NotImplementedError

    def refuse(self, message: str) -> DatasetMismatch:
        return DatasetMismatch("dataset.augment", message)


AUGMENTATIONS: Registry[type[Augmentation]] = Registry("augmentation")


def build_augmentation(
    spec: dict[str, Any] | None, input_shape: tuple[int, ...], std: torch.Tensor
) -> Augmentation | None:
    if spec is None:
        return None
    return AUGMENTATIONS.get(spec["kind"])(spec, tuple(input_shape), std)


def gaussian(key: ViewKey, shape: tuple[int, ...], draw: int, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of `shape` (batch first), one counter per element of each view."""
    per_view = int(np.prod(shape[1:]))
    counters = key.counters()[:, None] * per_view + np.arange(per_view)[None, :]
    noise = normal(key.seed, key.epoch, counters, draw).astype(np.float32).reshape(shape)
    return torch.from_numpy(noise).to(like.device, like.dtype, non_blocking=True)
