"""`signal`: a random shift (the edges repeated into the gap) and gaussian noise, for 1-D
signals such as MNIST-1D."""

import torch
import torch.nn.functional as F

from worker.augment.counters import integers
from worker.augment.registry import AUGMENTATIONS, Augmentation, ViewKey, gaussian

SHIFT, NOISE = 0, 1  # the draws


@AUGMENTATIONS.register("signal")
class SignalAugmentation(Augmentation):
    def check(self) -> None:
        if len(self.input_shape) not in (1, 2):
            raise self.refuse(
                f"'signal' augmentation needs (length,) or (channels, length) inputs; "
                f"these are {self.input_shape}"
            )

    def __call__(self, x: torch.Tensor, key: ViewKey) -> torch.Tensor:
        flat = x.dim() == 2  # (batch, length)
        if flat:
            x = x.unsqueeze(1)
        length = x.shape[-1]
        shift = min(self.spec["shift"], length - 1)
        if shift:
            padded = F.pad(x, (shift, shift), mode="replicate")
            offsets = integers(key.seed, key.epoch, key.counters(), SHIFT, 2 * shift + 1)
            start = torch.from_numpy(offsets)[:, None] + torch.arange(length)  # (batch, length)
            index = start.to(x.device)[:, None, :].expand(-1, x.shape[1], -1)
            x = padded.gather(-1, index)
        if self.spec["noise"]:
            scale = self.spec["noise"] * self.std.to(x.device).reshape(-1)[0]
            x = x + scale * gaussian(key, tuple(x.shape), NOISE, x)
        return x.squeeze(1) if flat else x
