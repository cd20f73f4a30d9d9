"""`image`: random crop of the zero-padded image and a horizontal flip (the CIFAR recipe)."""

import torch
import torch.nn.functional as F

from worker.augment.counters import integers, uniform
from worker.augment.registry import AUGMENTATIONS, Augmentation, ViewKey

CROP_X, CROP_Y, FLIP = 0, 1, 2  # the draws


@AUGMENTATIONS.register("image")
class ImageAugmentation(Augmentation):
    def check(self) -> None:
        if len(self.input_shape) not in (2, 3):
            raise self.refuse(
                f"'image' augmentation needs (height, width) or (channels, height, width) "
                f"inputs; these are {self.input_shape}"
            )

    def __call__(self, x: torch.Tensor, key: ViewKey) -> torch.Tensor:
        flat = x.dim() == 3  # (batch, height, width)
        if flat:
            x = x.unsqueeze(1)
        batch, _, height, width = x.shape
        counters = key.counters()
        pad = self.spec["crop_padding"]
        if pad:
            padded = F.pad(x, (pad, pad, pad, pad))
            span = 2 * pad + 1
            dx = torch.from_numpy(integers(key.seed, key.epoch, counters, CROP_X, span))
            dy = torch.from_numpy(integers(key.seed, key.epoch, counters, CROP_Y, span))
            rows = (dy[:, None] + torch.arange(height)).to(x.device)  # (batch, height)
            cols = (dx[:, None] + torch.arange(width)).to(x.device)  # (batch, width)
            b = torch.arange(batch, device=x.device)[:, None, None]
            # (batch, height, width, channels) -> (batch, channels, height, width)
            x = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]
            x = x.permute(0, 3, 1, 2).contiguous()
        if self.spec["flip"]:
            flip = torch.from_numpy(uniform(key.seed, key.epoch, counters, FLIP) < 0.5)
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
        return x.squeeze(1) if flat else x
