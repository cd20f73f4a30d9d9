"""`tabular`: gaussian noise on every input value, scaled by the data's std."""

import torch

from worker.augment.registry import AUGMENTATIONS, Augmentation, ViewKey, gaussian

NOISE = 0  # the draw


@AUGMENTATIONS.register("tabular")
class TabularAugmentation(Augmentation):
    def __call__(self, x: torch.Tensor, key: ViewKey) -> torch.Tensor:
        if not self.spec["noise"]:
            return x
        std = self.std.to(x.device, x.dtype)
        return x + self.spec["noise"] * std * gaussian(key, tuple(x.shape), NOISE, x)
